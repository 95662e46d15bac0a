package sinks

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestNATSJetStreamTwoHosts (issue 11 item 3): two daemons (different
// host keys, same sink name) publish the same records into one stream:
// kernel events and a userspace sender that does not number its messages
// (seq 0), several per receive time as when they arrive in one batch. Each
// host's copy of every record is stored, and each sink's sent counter
// equals what the stream holds from it. The old ids named neither the
// daemon nor the sink: the second host's copies were acknowledged as
// duplicates and counted sent though never stored.
func TestNATSJetStreamTwoHosts(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t, natstest.JetStream(t.TempDir()))
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	const n = 2000
	recs := make([]event.Record, n)
	for i := range recs {
		if i%2 == 0 {
			recs[i] = procRecord(uint32(i%4/2), uint32(i/4), cnmsg.ProcFork, uint32(i))
			continue
		}
		recs[i] = event.Record{Time: 1700000000000000000 + int64(i/8), Sender: 777, Targets: 1,
			Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 10, Val: 2}, Len: 4, Data: []byte("ping")}}
	}
	hosts := []string{"h1", "h2"}
	for run := range 3 {
		t.Run(fmt.Sprint("run", run), func(t *testing.T) {
			// A fresh stream: a purge keeps the duplicate window, which
			// (rightly) drops the previous run's ids.
			js.DeleteStream(ctx, "CN")
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CN", Subjects: []string{"cn.>"}, Storage: jetstream.MemoryStorage, Duplicates: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			counters := make([]*Counters, len(hosts))
			var wg sync.WaitGroup
			for i, h := range hosts {
				_, counters[i] = testCounters()
				cfg := baseConfig(srv.ClientURL())
				cfg.Name, cfg.Host, cfg.JetStream = "events", h, true
				cfg.DrainTimeout = time.Minute // Close returns once drained
				s := newSink(t, cfg, counters[i], zaptest.NewLogger(t))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range recs {
						r := recs[j]
						if err := s.Write(&r); err != nil {
							t.Error(err)
						}
					}
					s.Close(ctx)
				}()
			}
			wg.Wait()
			stored := map[string]int{}
			ids := map[string]bool{}
			cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for len(ids) < n*len(hosts) {
				batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					t.Fatal(err)
				}
				got := 0
				for m := range batch.Messages() {
					got++
					id := m.Headers().Get(nats.MsgIdHdr)
					if ids[id] {
						t.Fatalf("id %s stored twice", id)
					}
					ids[id] = true
					stored[strings.Split(m.Subject(), ".")[1]]++ // cn.{host}.{idx}.{val}
				}
				if got == 0 {
					break
				}
			}
			want := map[string]int{"h1": n, "h2": n}
			if diff := cmp.Diff(want, stored); diff != "" {
				t.Errorf("stored per host (-want +got):\n%s", diff)
			}
			for i, h := range hosts {
				if l := readLedger(counters[i]); l != (counts{sent: float64(stored[h])}) {
					t.Errorf("host %s: ledger %+v, want sent = %d stored", h, l, stored[h])
				}
			}
		})
	}
}

// TestNATSDupInProcessRetried (issue 11 item 3): JetStream answers 409,
// err_code 10158 "duplicate message id is in process" while an earlier
// copy of a message is still being stored. The sink asks again until the
// stream answers; the old code counted such messages failed. A core
// subscriber stands in for the stream to give that answer on demand.
func TestNATSDupInProcessRetried(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t)
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	asked := map[string]int{}
	if _, err := nc.Subscribe("cn.>", func(m *nats.Msg) {
		id := m.Header.Get(nats.MsgIdHdr)
		mu.Lock()
		asked[id]++
		k := asked[id]
		mu.Unlock()
		if k == 1 {
			m.Respond([]byte(`{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}`))
			return
		}
		m.Respond([]byte(`{"stream":"CN","seq":1,"duplicate":true}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, c := testCounters()
	cfg := baseConfig(srv.ClientURL())
	cfg.JetStream = true
	s := newSink(t, cfg, c, zaptest.NewLogger(t))
	defer s.Close(context.Background())
	waitFor(t, 5*time.Second, "ready", func() bool { return s.Ready() == nil })
	const n = 10
	for i := range uint32(n) {
		r := procRecord(0, i, cnmsg.ProcExit, 1)
		if err := s.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every message answered", func() bool {
		l := readLedger(c)
		return l.sent+l.failed+l.dropped == n
	})
	if l := readLedger(c); l != (counts{sent: n}) {
		t.Errorf("ledger %+v, want %d sent", l, n)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, k := range asked {
		if k != 2 {
			t.Errorf("%s published %d times, want 2 (the 409, then the answer)", id, k)
		}
	}
}
