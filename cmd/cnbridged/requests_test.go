package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestRequestReply: NATS requests become connector messages. A
// PROC_CN_MCAST_LISTEN for 1.1 gets the kernel's acknowledgement back
// (ack + 1, err 0); an id that is not configured is refused without
// anything being sent; an id nobody answers times out.
func TestRequestReply(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	ns := natstest.Run(t)
	host, _ := os.Hostname()
	cfg := fmt.Sprintf(`
host: rq-test
listener:
  groups: [18]
sinks:
  bus:
    type: nats
    url: %s
routes:
  - match: "*"
    sinks: [bus]
requests:
  - subject: cn.{host}.request.1.1
    id: "1.1"
    group: 1
    timeout: 2s
    sink: bus
    rate_limit: 1000
    burst: 1000
  - subject: cn.{host}.request.3.1
    id: "3.1"
    group: 3
    timeout: 300ms
    sink: bus
`, ns.ClientURL())
	_ = host
	p := startDaemon(t, cfg)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	listen := binary.NativeEndian.AppendUint32(nil, cnmsg.McastListen)
	const n = 200
	var rtts []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		m, err := nc.Request("cn.rq-test.request.1.1", listen, 5*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		rtts = append(rtts, time.Since(start))
		if e := m.Header.Get("Cn-Error"); e != "" {
			t.Fatalf("request %d: Cn-Error %s", i, e)
		}
		ack, _ := strconv.ParseUint(m.Header.Get("Cn-Ack"), 10, 32)
		reqAck, _ := strconv.ParseUint(m.Header.Get("Cn-Request-Ack"), 10, 32)
		if uint32(ack) != uint32(reqAck)+1 || m.Header.Get("Cn-Idx") != "1" || m.Header.Get("Cn-Val") != "1" {
			t.Fatalf("request %d: reply headers %v: want 1.1 and Cn-Ack = Cn-Request-Ack + 1", i, m.Header)
		}
		ev, err := cnmsg.DecodeProc(m.Data)
		if err != nil || ev.What != cnmsg.ProcNone || ev.Err != 0 {
			t.Fatalf("request %d: reply %x is not an ack with err 0 (%v)", i, m.Data, err)
		}
	}
	slices.Sort(rtts)
	t.Logf("request round trip over loopback NATS (%d requests): median %s, p99 %s, max %s",
		n, rtts[n/2], rtts[n*99/100], rtts[n-1])

	// The counter is bumped after sendto returns, which can be after the
	// reply was published: wait for all n before taking the baseline.
	cntest.WaitFor(t, 5*time.Second, "every request counted as sent", func() bool {
		return p.metric("cnbridged_requests_sent_total", nil) == n
	})
	sentBefore := p.metric("cnbridged_requests_sent_total", nil)
	// Another id than the subject's: refused, nothing sent.
	req := nats.NewMsg("cn.rq-test.request.1.1")
	req.Header.Set("Cn-Idx", "4")
	req.Data = listen
	m, err := nc.RequestMsg(req, 2*time.Second)
	if err != nil || m.Header.Get("Cn-Error") != "id_not_allowed" {
		t.Errorf("request for id 4.1 on the 1.1 subject: %v %v, want Cn-Error id_not_allowed", err, m)
	}
	// A subject no entry serves: no responders, nothing sent.
	if _, err := nc.Request("cn.rq-test.request.9.9", listen, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("unconfigured subject: got %v, want no responders", err)
	}
	// Too large for a connector message.
	if m, err := nc.Request("cn.rq-test.request.1.1", make([]byte, 20000), 2*time.Second); err != nil || m.Header.Get("Cn-Error") != "too_large" {
		t.Errorf("oversized request: %v, want Cn-Error too_large", err)
	}
	if got := p.metric("cnbridged_requests_sent_total", nil); got != sentBefore {
		t.Errorf("refused requests sent %v messages to the kernel, want none", got-sentBefore)
	}
	// An id without a kernel user: the request goes out, no reply comes.
	m, err = nc.Request("cn.rq-test.request.3.1", []byte("ping"), 3*time.Second)
	if err != nil || m.Header.Get("Cn-Error") != "timeout" {
		t.Errorf("request to 3.1: %v, want Cn-Error timeout", err)
	}
	p.stop()
}
