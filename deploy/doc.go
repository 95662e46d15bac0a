// Package deploy holds no code. It exists for its tests, which check the
// deployment files beside it: the systemd unit passes systemd-analyze verify
// and keeps a security exposure of at most 1.5, and the release build in
// build-static.sh, which the Dockerfile also runs, yields a static binary
// that runs.
package deploy
