package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// brokenNATS is a sink whose server never answers (nothing listens on
// port 1): what it holds is counted failed at Close, the rest dropped.
func brokenNATS(jetStream bool) func(t *testing.T, c *Counters) Sink {
	return func(t *testing.T, c *Counters) Sink {
		cfg := baseConfig("nats://127.0.0.1:1")
		cfg.JetStream = jetStream
		cfg.DrainTimeout = 200 * time.Millisecond
		return newSink(t, cfg, c, zap.NewNop())
	}
}

func decodeBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("message is not JSON: %v: %q", err, b)
	}
	return o
}

func TestNATSCoreConformance(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t)
	var hosts atomic.Int64
	conformance{
		open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
			host := fmt.Sprint("h", hosts.Add(1))
			sub, err := nats.Connect(srv.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sub.Close)
			var mu sync.Mutex
			var got [][]byte
			marks := map[string]bool{}
			if _, err := sub.Subscribe("cn."+host+".>", func(m *nats.Msg) {
				mu.Lock()
				defer mu.Unlock()
				if mark := m.Header.Get("Test-Mark"); mark != "" {
					marks[mark] = true
					return
				}
				got = append(got, m.Data)
			}); err != nil {
				t.Fatal(err)
			}
			if err := sub.Flush(); err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(srv.ClientURL())
			cfg.Host = host
			s := newSink(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
			cntest.WaitFor(t, 5*time.Second, "ready", func() bool { return s.Ready() == nil })
			return s, func() []map[string]any {
				// Everything the sink had confirmed was routed before this
				// marker, and a subscription delivers in order.
				m := nats.NewMsg("cn." + host + ".mark")
				m.Header.Set("Test-Mark", "end")
				if err := sub.PublishMsg(m); err != nil {
					t.Fatal(err)
				}
				cntest.WaitFor(t, 10*time.Second, "the subscriber to settle", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return marks["end"]
				})
				mu.Lock()
				defer mu.Unlock()
				var out []map[string]any
				for _, b := range got {
					out = append(out, decodeBody(t, b))
				}
				return out
			}
		},
		broken: brokenNATS(false),
	}.run(t)
}

func TestNATSJetStreamConformance(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t, natstest.JetStream(t.TempDir()))
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "CN", Subjects: []string{"cn.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	var hosts atomic.Int64
	conformance{
		open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
			host := fmt.Sprint("h", hosts.Add(1))
			cfg := baseConfig(srv.ClientURL())
			cfg.Host, cfg.JetStream = host, true
			s := newSink(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
			cntest.WaitFor(t, 5*time.Second, "ready", func() bool { return s.Ready() == nil })
			return s, func() []map[string]any {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cons, err := js.OrderedConsumer(ctx, "CN", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"cn." + host + ".>"}})
				if err != nil {
					t.Fatal(err)
				}
				var out []map[string]any
				for {
					batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(300*time.Millisecond))
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for m := range batch.Messages() {
						n++
						out = append(out, decodeBody(t, m.Data()))
					}
					if n == 0 {
						return out
					}
				}
			}
		},
		broken: brokenNATS(true),
	}.run(t)
}

var _ Pender = (*NATS)(nil)
