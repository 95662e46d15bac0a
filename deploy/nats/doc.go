// Package natsdeploy holds no code. Its tests run the NATS topology files
// beside it (hub.conf, leaf.conf, leaf-stream.json, hub-stream.json and
// the per-host permissions in fleet-auth.conf) on embedded servers.
package natsdeploy
