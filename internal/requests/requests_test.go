package requests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// echoKernel answers every request like a protocol-abiding kernel user:
// same id and seq, ack + 1, the payload reversed.
type echoKernel struct {
	mu   sync.Mutex
	srv  *Server
	sent []cnmsg.Message
	mute bool
}

func (k *echoKernel) SendKernel(dg []byte) error {
	m, err := cnmsg.Decode(dg)
	if err != nil {
		return err
	}
	m.Data = append([]byte(nil), m.Data...)
	k.mu.Lock()
	k.sent = append(k.sent, m)
	mute := k.mute
	k.mu.Unlock()
	if !mute {
		reply := m
		reply.Ack++
		reply.Data = []byte("pong")
		reply.Len = 4
		go k.srv.Offer(reply, time.Now())
		// A message with the right seq but the wrong ack is a new message.
		wrong := reply
		wrong.Ack += 5
		go k.srv.Offer(wrong, time.Now())
	}
	return nil
}

func setup(t *testing.T, entries []Config) (*nats.Conn, *echoKernel) {
	t.Helper()
	ns := natstest.Run(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	k := &echoKernel{}
	srv, err := New(entries, nc, k, event.NewEncoder("h"), prometheus.NewRegistry(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	k.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run subscribes on nc: once it holds a subscription per entry, a
	// flush (PING/PONG) has the server hold them too.
	deadline := time.Now().Add(10 * time.Second)
	for nc.NumSubscriptions() < len(entries) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d request subscriptions after 10s", nc.NumSubscriptions(), len(entries))
		}
		time.Sleep(time.Millisecond)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc, k
}

func TestRequestFormatsAndRules(t *testing.T) {
	nc, k := setup(t, []Config{
		{NATSSubject: "rq.raw", CnID: cnmsg.ID{Idx: 7, Val: 1}, Timeout: time.Second, Format: "raw"},
		{NATSSubject: "rq.json", CnID: cnmsg.ID{Idx: 7, Val: 2}, Timeout: time.Second, Format: "json"},
		{NATSSubject: "rq.limited", CnID: cnmsg.ID{Idx: 7, Val: 3}, Timeout: time.Second, Format: "raw", RateLimit: 1, Burst: 2},
	})
	t.Run("raw", func(t *testing.T) {
		m, err := nc.Request("rq.raw", []byte("ping"), 2*time.Second)
		if err != nil || string(m.Data) != "pong" || m.Header.Get(HdrError) != "" {
			t.Fatalf("got %v %v, want the reply payload pong", m, err)
		}
		if m.Header.Get(HdrSeq) != m.Header.Get(HdrReqSeq) {
			t.Errorf("reply seq %s, request seq %s: want equal", m.Header.Get(HdrSeq), m.Header.Get(HdrReqSeq))
		}
	})
	t.Run("json", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"data": base64.StdEncoding.EncodeToString([]byte("hi")), "flags": 3})
		m, err := nc.Request("rq.json", body, 2*time.Second)
		if err != nil || m.Header.Get(HdrError) != "" {
			t.Fatalf("got %v %v", m, err)
		}
		var line map[string]any
		if err := json.Unmarshal(m.Data, &line); err != nil || line["data"] != base64.StdEncoding.EncodeToString([]byte("pong")) {
			t.Errorf("reply %s: want the output line with the payload", m.Data)
		}
		k.mu.Lock()
		last := k.sent[len(k.sent)-1]
		k.mu.Unlock()
		if string(last.Data) != "hi" || last.Flags != 3 || last.ID != (cnmsg.ID{Idx: 7, Val: 2}) {
			t.Errorf("sent %+v, want data hi, flags 3 to 7.2", last)
		}
	})
	t.Run("bad json", func(t *testing.T) {
		m, err := nc.Request("rq.json", []byte("{"), 2*time.Second)
		if err != nil || m.Header.Get(HdrError) != ErrBadRequest {
			t.Errorf("got %v %v, want %s", m, err, ErrBadRequest)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		var errs []string
		for i := 0; i < 4; i++ {
			m, err := nc.Request("rq.limited", []byte("x"), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			errs = append(errs, m.Header.Get(HdrError))
		}
		if errs[0] != "" || errs[1] != "" || errs[2] != ErrRateLimited || errs[3] != ErrRateLimited {
			t.Errorf("errors %q, want two answered then rate_limited", errs)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		k.mu.Lock()
		k.mute = true
		k.mu.Unlock()
		start := time.Now()
		m, err := nc.Request("rq.raw", []byte("ping"), 3*time.Second)
		if err != nil || m.Header.Get(HdrError) != ErrTimeout {
			t.Fatalf("got %v %v, want %s", m, err, ErrTimeout)
		}
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("timed out after %s, before the 1s timeout", el)
		}
	})
}
