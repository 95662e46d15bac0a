package sinks

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestNATSJetStreamCluster (issue 11): a JetStream sink publishing into an
// R3 stream of a 3-node cluster at 2 000 msg/s. Mid-stream the stream
// leader is killed and restarted 2 s later; later two of the three nodes
// are stopped (no quorum) for 3 s and restarted. Afterwards the stream
// holds every message exactly once, and the sink's counters equal what the
// stream holds: sent = stored, nothing failed or dropped.
func TestNATSJetStreamCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster run takes about 20 s")
	}
	leakCheck(t)
	cl := natstest.RunCluster(t, 3, t.TempDir())

	met, c := testCounters()
	cfg := baseConfig(cl.URLs())
	cfg.JetStream = true
	cfg.AckTimeout = time.Second
	cfg.DrainTimeout = 2 * time.Minute // returns once drained; generous for -race on a loaded machine
	cfg.Stream = &NATSStream{Name: "CN", Subjects: []string{"cn.>"}, Storage: "file", DuplicateWindow: 2 * time.Minute, Replicas: 3}
	s := newSink(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	cntest.WaitFor(t, 30*time.Second, "the sink ready (stream created)", func() bool { return s.Ready() == nil })
	run := NewRunner(RunnerConfig{Name: "nats", QueueSize: 131072, QueueMaxBytes: 64 << 20}, s, met, zap.NewNop())
	done := make(chan error, 1)
	go func() { done <- run.Run(context.Background()) }()

	const total = 20000
	var outages sync.WaitGroup
	restartLater := func(d time.Duration, nodes ...int) {
		outages.Add(1)
		go func() {
			defer outages.Done()
			time.Sleep(d) // the outage itself
			for _, n := range nodes {
				if err := cl.Start(n); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	feed(t, run, total, 2000, func(i int) {
		switch i {
		case 3000:
			leader := cl.StreamLeader("CN")
			if leader < 0 {
				t.Error("no stream leader to kill")
				return
			}
			t.Logf("message %d: killing stream leader n%d for 2s", i, leader)
			cl.Stop(leader)
			restartLater(2*time.Second, leader)
		case 12000:
			outages.Wait() // the leader is back
			leader := max(cl.StreamLeader("CN"), 0)
			other := (leader + 1) % cl.Size()
			t.Logf("message %d: stopping n%d and n%d (no quorum) for 3s", i, leader, other)
			cl.Stop(leader)
			cl.Stop(other)
			restartLater(3*time.Second, leader, other)
		}
	})
	outages.Wait()
	run.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l := readCounts(c)

	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Right after the restarts the cluster may still answer 503 (JetStream
	// system temporarily unavailable) to any of these calls: wait until
	// all three have answered.
	var (
		st   jetstream.Stream
		info *jetstream.StreamInfo
		cons jetstream.Consumer
	)
	cl.WaitFor(30*time.Second, "the stream to answer", func() bool {
		if st, err = js.Stream(ctx, "CN"); err != nil {
			return false
		}
		if info, err = st.Info(ctx); err != nil {
			return false
		}
		cons, err = st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, total)
	// The ordered consumer may pause or restart while the recovered
	// cluster settles: an empty or failed fetch is retried until every
	// stored message has been read or 30 s have passed.
	readBy := time.Now().Add(30 * time.Second)
	for uint64(len(seen)) < info.State.Msgs && time.Now().Before(readBy) {
		batch, err := cons.Fetch(5000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Logf("fetch after %d messages: %v (retrying)", len(seen), err)
			continue
		}
		for m := range batch.Messages() {
			id := m.Headers().Get(nats.MsgIdHdr)
			if seen[id] {
				t.Errorf("message %s stored twice", id)
			}
			seen[id] = true
		}
		if err := batch.Error(); err != nil {
			t.Logf("fetch after %d messages: %v (retrying)", len(seen), err)
		}
	}
	t.Logf("stream: %d messages, %d distinct ids; sink: sent %v, failed %v, dropped %v", info.State.Msgs, len(seen), l.sent, l.failed, l.dropped)
	if info.State.Msgs != total || len(seen) != total {
		t.Errorf("stream holds %d messages (%d distinct), want each of %d once", info.State.Msgs, len(seen), total)
	}
	if l != (counts{sent: float64(info.State.Msgs)}) {
		t.Errorf("sink counts %+v, want sent = %d stored and nothing failed or dropped", l, info.State.Msgs)
	}
}
