package sinks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// recorder is a Sink that keeps the seqs written, can hold Write until
// release is closed, and fails (fatally) at the failAt-th write.
type recorder struct {
	mu      sync.Mutex
	seqs    []uint32
	release chan struct{} // nil: never hold
	failAt  int           // 1-based; 0: never
	writes  int
	closed  bool
	c       *Counters
}

func (s *recorder) Write(r *event.Record) error {
	if s.release != nil {
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.writes == s.failAt {
		s.c.Fail(FailWrite, 1)
		return errors.Join(ErrFatal, errors.New("disk on fire"))
	}
	s.seqs = append(s.seqs, r.Msg.Seq)
	s.c.Sent.Inc()
	return nil
}
func (s *recorder) Flush(context.Context) error { return nil }
func (s *recorder) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *recorder) got() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.seqs...)
}

type runnerRig struct {
	t    *testing.T
	r    *Runner
	sink *recorder
	c    *Counters
	pool *event.Pool
	seq  uint32
}

func newRunnerRig(t *testing.T, cfg RunnerConfig, sink *recorder) *runnerRig {
	m := NewMetrics(prometheus.NewRegistry())
	cfg.Name = "r"
	sink.c = m.Counters("r")
	return &runnerRig{t: t, r: NewRunner(cfg, sink, m, zaptest.NewLogger(t)), sink: sink, c: sink.c, pool: event.NewPool()}
}

// batch returns a batch of n records for slot 0 (and one for slot 1, which
// this runner must skip), with the next seqs.
func (g *runnerRig) batch(n int) *event.Batch {
	b := g.pool.Get()
	for range n {
		b.Add(&event.Record{Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 9, Val: 9}, Seq: g.seq, Data: make([]byte, 100)}, Targets: 1})
		g.seq++
	}
	b.Add(&event.Record{Msg: cnmsg.Message{Seq: 999999}, Targets: 2})
	return b
}

// offer hands b to the runner and drops the caller's reference, as the
// bridge does.
func (g *runnerRig) offer(b *event.Batch) {
	g.r.Offer(b)
	b.Release()
}

func (g *runnerRig) run(ctx context.Context) chan error {
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	return done
}

func (g *runnerRig) dropped(reason string) float64 {
	return testutil.ToFloat64(g.c.drops.WithLabelValues(reason))
}

func seqs(from, to uint32) []uint32 {
	var out []uint32
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

// TestRunnerDropNewest: with no room, Offer returns at once and counts the
// batch's records dropped, reason queue_full; what was queued is delivered
// in order, the other slot's records never.
func TestRunnerDropNewest(t *testing.T) {
	g := newRunnerRig(t, RunnerConfig{QueueSize: 4, QueueMaxBytes: 1 << 20}, &recorder{})
	g.offer(g.batch(3))
	g.offer(g.batch(2)) // 3+2 > 4
	if got := g.dropped(DropQueueFull); got != 2 {
		t.Errorf("queue_full got %v, want 2", got)
	}
	done := g.run(context.Background())
	g.r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := g.sink.got(); !slices.Equal(got, seqs(0, 3)) {
		t.Errorf("written got %v, want %v", got, seqs(0, 3))
	}
}

// TestRunnerBlock: under when_full: block, Offer waits for room instead of
// dropping; once the runner runs, everything arrives in order.
func TestRunnerBlock(t *testing.T) {
	g := newRunnerRig(t, RunnerConfig{QueueSize: 4, QueueMaxBytes: 1 << 20, WhenFull: Block}, &recorder{})
	g.offer(g.batch(3))
	offered := make(chan struct{})
	b := g.batch(2)
	go func() { g.offer(b); close(offered) }()
	deadline := time.Now().Add(10 * time.Second)
	for g.r.q.waiters() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Offer did not wait for room")
		}
		time.Sleep(time.Millisecond)
	}
	done := g.run(context.Background())
	<-offered
	g.r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := g.sink.got(); !slices.Equal(got, seqs(0, 5)) {
		t.Errorf("written got %v, want %v", got, seqs(0, 5))
	}
	if got := testutil.ToFloat64(g.c.dropped); got != 0 {
		t.Errorf("dropped got %v, want 0", got)
	}
}

// TestRunnerByteBound: queue_max_bytes bounds the queue even with room for
// records; an empty queue still takes one batch larger than the bound.
func TestRunnerByteBound(t *testing.T) {
	g := newRunnerRig(t, RunnerConfig{QueueSize: 1 << 20, QueueMaxBytes: 1}, &recorder{})
	g.offer(g.batch(2)) // larger than 1 byte, but the queue is empty
	g.offer(g.batch(2))
	if got, want := g.dropped(DropQueueFull), 2.0; got != want {
		t.Errorf("queue_full got %v, want %v", got, want)
	}
	if got := g.r.QueueLength(); got != 2 {
		t.Errorf("queue length got %d, want 2", got)
	}
}

// TestRunnerDropOnShutdown: when the runner's context ends while its sink
// is stuck, what is queued is counted dropped (reason shutdown), the sink
// is closed, and later offers are counted the same way.
func TestRunnerDropOnShutdown(t *testing.T) {
	g := newRunnerRig(t, RunnerConfig{QueueSize: 100, QueueMaxBytes: 1 << 20}, &recorder{release: make(chan struct{})})
	g.offer(g.batch(1)) // the sink holds its write
	g.offer(g.batch(4))
	g.offer(g.batch(5))
	ctx, cancel := context.WithCancel(context.Background())
	done := g.run(ctx)
	cancel()
	close(g.sink.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sent := testutil.ToFloat64(g.c.Sent)
	if sent+g.dropped(DropShutdown) != 10 {
		t.Errorf("sent %v + dropped(shutdown) %v, want 10", sent, g.dropped(DropShutdown))
	}
	if g.dropped(DropShutdown) < 9 {
		t.Errorf("dropped(shutdown) got %v, want at least the 9 queued behind the held write", g.dropped(DropShutdown))
	}
	if !g.sink.closed {
		t.Error("sink not closed")
	}
	g.offer(g.batch(3))
	if got := g.dropped(DropShutdown); got < 12 {
		t.Errorf("an offer after the stop: dropped(shutdown) got %v, want it counted", got)
	}
}

// TestRunnerWriteErrorMidBatch: a fatal write error ends Run with it; the
// rest of that batch and everything queued behind it are counted dropped
// (shutdown), the failed record by the sink itself: every record is
// accounted for once.
func TestRunnerWriteErrorMidBatch(t *testing.T) {
	g := newRunnerRig(t, RunnerConfig{QueueSize: 100, QueueMaxBytes: 1 << 20}, &recorder{failAt: 2})
	g.offer(g.batch(4))
	g.offer(g.batch(3))
	err := <-g.run(context.Background())
	if !errors.Is(err, ErrFatal) {
		t.Fatalf("Run got %v, want ErrFatal", err)
	}
	if got := g.sink.got(); !slices.Equal(got, []uint32{0}) {
		t.Errorf("written got %v, want [0]", got)
	}
	sent, failed, dropped := testutil.ToFloat64(g.c.Sent), testutil.ToFloat64(g.c.Failed), g.dropped(DropShutdown)
	if sent != 1 || failed != 1 || dropped != 5 {
		t.Errorf("sent %v failed %v dropped(shutdown) %v, want 1, 1, 5", sent, failed, dropped)
	}
	if !g.sink.closed {
		t.Error("sink not closed")
	}
}
