package sinks

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// fakeStream answers JetStream publishes on subject like a stream would,
// until told to go silent.
type fakeStream struct {
	seq    atomic.Uint64
	silent atomic.Bool
}

func (f *fakeStream) serve(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if f.silent.Load() {
			return
		}
		m.Respond(fmt.Appendf(nil, `{"stream":"CN","seq":%d}`, f.seq.Add(1)))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// offerN offers n process events to r in batches of 50, numbering them
// from *seq.
func offerN(r *Runner, pool *event.Pool, seq *uint32, n int) {
	for n > 0 {
		b := pool.Get()
		for j := 0; j < 50 && n > 0; j++ {
			rec := procRecord(0, *seq, cnmsg.ProcFork, *seq)
			*seq++
			n--
			b.Add(&rec)
		}
		r.Offer(b)
		b.Release()
	}
}

// TestNATSStalledWindow (issue 11 item 8): when JetStream stops
// acknowledging, the sink's window fills and the runner blocks in Write.
// cnbridged_sink_queue_length must still count every record waiting (in
// the queue, in the batch being written, and in the unacknowledged
// window), and Ready must fail within a second, saying why. The old gauge
// kept the value from before the stall (0) and Ready waited for the
// ack timeout.
func TestNATSStalledWindow(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t)
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stream := &fakeStream{}
	stream.serve(t, nc, "cn.>")

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c := m.Counters("nats")
	cfg := baseConfig(srv.ClientURL())
	cfg.JetStream = true
	cfg.MaxInFlight = 100
	cfg.AckTimeout = 3 * time.Second
	s := newSink(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	run := NewRunner(RunnerConfig{Name: "nats", QueueSize: 1 << 20, QueueMaxBytes: 1 << 30}, s, m, zap.NewNop())
	done := make(chan error, 1)
	go func() { done <- run.Run(context.Background()) }()
	gauge := func() float64 { return testutil.ToFloat64(m.queueLen) }

	pool := event.NewPool()
	var seq uint32
	offerN(run, pool, &seq, 500)
	cntest.WaitFor(t, 10*time.Second, "the first 500 acknowledged", func() bool { return readCounts(c).sent == 500 })
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready = %v while acknowledged", err)
	}
	if g := gauge(); g != 0 {
		t.Errorf("queue length %v with nothing waiting, want 0", g)
	}

	stream.silent.Store(true)
	stalled := time.Now()
	offerN(run, pool, &seq, 1000)
	cntest.WaitFor(t, 5*time.Second, "Ready to report the stall", func() bool { return s.Ready() != nil })
	if d := time.Since(stalled); d > time.Second {
		t.Errorf("Ready reported the stall after %s, want within 1s", d)
	}
	if err := s.Ready(); !strings.Contains(err.Error(), "unacknowledged") {
		t.Errorf("Ready = %v, want the reason (unacknowledged messages)", err)
	}
	// Write is blocked on the full window: 100 in it, the rest queued or in
	// the batch being written.
	cntest.WaitFor(t, 5*time.Second, "the window to fill", func() bool { return s.Pending() == cfg.MaxInFlight })
	if g := gauge(); g != 1000 {
		t.Errorf("queue length %v while the runner is blocked, want 1000 (every record waiting)", g)
	}

	stream.silent.Store(false) // the retries after ack_timeout are answered
	run.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l := readCounts(c); l != (counts{sent: 1500}) {
		t.Errorf("counts %+v, want 1500 sent", l)
	}
	if g := gauge(); g != 0 {
		t.Errorf("queue length %v after the runner finished, want 0", g)
	}
}
