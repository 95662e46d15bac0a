package sinks

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// publishEncodedVersion is the nats.go version whose (*Conn).publish
// publishEncoded was checked against.
const publishEncodedVersion = "v1.55.0"

// TestPublishEncodedClientVersion fails when go.mod moves to another
// nats.go: check publishEncoded's signature against the new client's
// (*Conn).publish, run TestPublishEncoded, then change the version here.
func TestPublishEncodedClientVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(mod)) {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "github.com/nats-io/nats.go" {
			if f[1] != publishEncodedVersion {
				t.Fatalf("go.mod requires nats.go %s; publishEncoded was checked against %s: compare its signature with (*Conn).publish in the new version, then update publishEncodedVersion", f[1], publishEncodedVersion)
			}
			return
		}
	}
	t.Fatal("go.mod does not require nats.go")
}

// TestPublishEncoded: every record kind, in both formats, from a sink
// whose host key needs the client's header clean-up (white space at its
// ends, CR and LF inside), reaches a subscriber exactly as the same
// message does through the client's PublishMsg with the headers as a
// Header map: the headers the sink encodes are the ones the client would.
func TestPublishEncoded(t *testing.T) {
	srv := natstest.Run(t)
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe("cn.>", ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func() *nats.Msg {
		select {
		case m := <-ch:
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
			return nil
		}
	}
	const host = " web 1\r\nx "
	recs := everyKind(t)
	for _, format := range []string{"json", "raw"} {
		s := &NATS{cfg: NATSConfig{Host: host}, enc: event.NewEncoder(host), idPrefix: msgIDPrefix(testBoot, host, "nats"),
			subjects: make(subjCache), hostHeader: headerValue(host), raw: format == "raw"}
		s.subj, _ = compileSubject("cn.{idx}.{val}", host)
		for i := range recs {
			var e natsMsg
			s.fill(&e, uint64(i), &recs[i])
			if err := publishEncoded(nc, e.subject, e.reply, false, e.hdr, e.body); err != nil {
				t.Fatal(err)
			}
			got := next()
			// The message with the host as configured: the client cleans
			// up header values as it encodes them.
			want := msgOf(t, &e)
			if format == "raw" {
				want.Header.Set(HeaderHost, host)
			}
			rawPrefix := testBoot + ":" + strings.NewReplacer("%", "%25", ":", "%3A").Replace(host) + ":nats:"
			want.Header.Set(nats.MsgIdHdr, rawPrefix+strings.TrimPrefix(e.msgID(), s.idPrefix))
			if err := nc.PublishMsg(&want); err != nil {
				t.Fatal(err)
			}
			viaClient := next()
			if diff := cmp.Diff(viaClient.Header, got.Header); diff != "" {
				t.Errorf("%s, %s record %d: headers (-PublishMsg +sink):\n%s", format, recs[i].Kind, i, diff)
			}
			if string(got.Data) != string(viaClient.Data) || got.Subject != viaClient.Subject {
				t.Errorf("%s, %s record %d: got %s %q, PublishMsg %s %q", format, recs[i].Kind, i, got.Subject, got.Data, viaClient.Subject, viaClient.Data)
			}
		}
	}
}
