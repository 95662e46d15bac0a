package sinks

import (
	_ "unsafe" // go:linkname

	"github.com/nats-io/nats.go"
)

// publishEncoded publishes a message whose headers the sink encoded itself
// (fill): nats.go's own (*Conn).publish, which PublishMsg calls once it
// has encoded a nats.Msg's Header map. The client has no exported way to
// publish encoded headers, and encoding them from the map at every publish
// — two walks of the map and an allocation — cost 15–20 % of the daemon's
// CPU for core NATS (docs/performance.md). The function is the client's,
// unchanged: the connection's lock, payload limits, subject checks,
// statistics and buffering all stay its own.
//
// This reaches into the client's internals: the signature must match
// nats.go's exactly. TestPublishEncodedClientVersion fails when go.mod
// moves to another nats.go version, so that whoever upgrades checks the
// signature below against the new source and TestPublishEncoded (the
// same messages through PublishMsg and publishEncoded, compared as
// subscribers receive them) passes before the version in the test changes.
//
//go:linkname publishEncoded github.com/nats-io/nats%2ego.(*Conn).publish
func publishEncoded(nc *nats.Conn, subject, reply string, validateReply bool, hdr, data []byte) error
