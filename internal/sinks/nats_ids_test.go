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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
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
				if l := readCounts(counters[i]); l != (counts{sent: float64(stored[h])}) {
					t.Errorf("host %s: counts %+v, want sent = %d stored", h, l, stored[h])
				}
			}
		})
	}
}

// TestNATSDupInProcessRetried (issue 11 item 3): JetStream answers 409,
// err_code 10158 "duplicate message id is in process" while an earlier
// copy of a message is still being stored — a retry that crossed a slow
// acknowledgement. The sink asks again until the stream answers; the old
// code counted such messages failed. A core subscriber stands in for the
// stream to give these answers on demand: no answer to the first copy
// (the ack timeout sends a second), 409 to the second, "duplicate" to the
// third — the first copy's, which is this sink's own: sent.
//
// With "dup-not-ours" the stream answers 409 to the first copy and
// "duplicate" to the second: no copy of this sink's was ever stored, so
// the message the stream holds under the id is someone else's (issue 20
// item 3): failed, reason duplicate_id, never sent.
func TestNATSDupInProcessRetried(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []string // per copy; "" is no answer
		want    counts
		reason  string
	}{
		{"own-copy", []string{"", dupInProcess, dupAck}, counts{sent: 10}, ""},
		{"dup-not-ours", []string{dupInProcess, dupAck}, counts{failed: 10}, FailDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
				if k <= len(tc.answers) && tc.answers[k-1] != "" {
					m.Respond([]byte(tc.answers[k-1]))
				}
			}); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			m, c := testCounters()
			cfg := baseConfig(srv.ClientURL())
			cfg.JetStream = true
			cfg.AckTimeout = 200 * time.Millisecond
			core, logs := observer.New(zap.WarnLevel)
			s := newSink(t, cfg, c, zap.New(core))
			defer s.Close(context.Background())
			cntest.WaitFor(t, 5*time.Second, "ready", func() bool { return s.Ready() == nil })
			const n = 10
			for i := range uint32(n) {
				r := procRecord(0, i, cnmsg.ProcExit, 1)
				if err := s.Write(&r); err != nil {
					t.Fatal(err)
				}
			}
			cntest.WaitFor(t, 10*time.Second, "every message answered", func() bool {
				l := readCounts(c)
				return l.sent+l.failed+l.dropped == n
			})
			if l := readCounts(c); l != tc.want {
				t.Errorf("counts %+v, want %+v", l, tc.want)
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(m.failures.WithLabelValues("nats", tc.reason)); got != n {
					t.Errorf("cnbridged_sink_failed_total{reason=%s} = %v, want %d", tc.reason, got, n)
				}
				if logs.FilterMessageSnippet("did not publish").Len() == 0 {
					t.Error("no warning says why the records failed")
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for id, k := range asked {
				if k != len(tc.answers) {
					t.Errorf("%s published %d times, want %d", id, k, len(tc.answers))
				}
			}
		})
	}
}

const (
	dupInProcess = `{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}`
	dupAck       = `{"stream":"CN","seq":1,"duplicate":true}`
)

// TestNATSJetStreamForeignDuplicate (issue 20 item 3): the stream already
// holds a message under the id the sink's record gets (another publisher
// configured with this daemon's host and sink name, within the duplicate
// window). JetStream acknowledges the record as a duplicate; the sink
// never published it before, so the record is not in the stream: it is
// counted failed with reason duplicate_id. The old code counted it sent.
func TestNATSJetStreamForeignDuplicate(t *testing.T) {
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
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CN", Subjects: []string{"cn.>"}, Storage: jetstream.MemoryStorage, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	recs := []event.Record{procRecord(0, 1, cnmsg.ProcExec, 7), procRecord(0, 2, cnmsg.ProcExit, 7)}
	// The other publisher stored the first record's id.
	var ids event.IDs
	foreign := nats.NewMsg("cn.h1.1.1")
	foreign.Header.Set(nats.MsgIdHdr, msgIDPrefix(testBoot, "h1", "nats")+string(ids.Append(nil, &recs[0])))
	foreign.Data = []byte("someone else's")
	if _, err := js.PublishMsg(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	m, c := testCounters()
	cfg := baseConfig(srv.ClientURL())
	cfg.JetStream = true
	s := newSink(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	for i := range recs {
		if err := s.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	if l := readCounts(c); l != (counts{sent: 1, failed: 1}) {
		t.Errorf("counts %+v, want 1 sent (the exit) and 1 failed (the exec, whose id the stream held)", l)
	}
	if got := testutil.ToFloat64(m.failures.WithLabelValues("nats", FailDuplicate)); got != 1 {
		t.Errorf("failed{reason=duplicate_id} = %v, want 1", got)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (the foreign one and the exit)", info.State.Msgs)
	}
}
