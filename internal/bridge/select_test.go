package bridge

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/ratelimit"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/selection"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/where"
)

// pidSink notes what it is written: the pid of each process event, and
// each suppression record's count.
type pidSink struct {
	mu         sync.Mutex
	pids       []uint32
	suppressed uint64
}

func (s *pidSink) Write(r *event.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Kind {
	case event.KindSuppressed:
		s.suppressed += r.Suppressed.Count
	case event.KindMessage:
		s.pids = append(s.pids, r.Proc.PID)
	}
	return nil
}
func (s *pidSink) Flush(context.Context) error { return nil }
func (s *pidSink) Close(context.Context) error { return nil }

func (s *pidSink) got() ([]uint32, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pids), s.suppressed
}

// TestSelectionSinks: the records a selecting route matches are decided
// on the enricher goroutine. Sink a hears only route 0 (where proc.pid <
// 20, rate limit burst 3): it gets what route 0 selects. Sink b hears
// route 0 and route 1 (no stage): it gets everything. The tap gets every
// routed record. Route 0's suppression count reaches a and b at stop, so
// sent + suppressed = what passed its where.
func TestSelectionSinks(t *testing.T) {
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	x, err := env.Compile(`proc.pid < 20`)
	if err != nil {
		t.Fatal(err)
	}
	rl := &ratelimit.Config{EventsPerSecond: 0.001, Burst: 3}
	rl.SetDefaults()
	if err := rl.Validate(env); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	log := zaptest.NewLogger(t)
	m := sinks.NewMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var outs [3]*pidSink
	var runners [3]*sinks.Runner
	for i, name := range []string{"a", "b", "tap"} {
		outs[i] = &pidSink{}
		runners[i] = sinks.NewRunner(sinks.RunnerConfig{Name: name, Slot: i, QueueSize: 1024, WhenFull: sinks.Block}, outs[i], m, log)
		wg.Add(1)
		go func() { defer wg.Done(); runners[i].Run(ctx) }()
	}
	proc, _ := router.ParsePattern("1.1")
	const tap = 1 << 2
	plan := &Plan{
		Table: router.New([]router.Route{
			{Match: proc, Sinks: 1<<0 | 1<<1 | tap, Selects: true, Stage: 0},
			{Match: proc, Sinks: 1<<1 | tap},
		}),
		Sinks:   []Target{runners[0], runners[1], runners[2]},
		Tap:     tap,
		Encoder: event.NewEncoder("h"),
		Stages: []*Stage{{Route: 0, Sinks: 1<<0 | 1<<1 | tap,
			Sel: selection.New(selection.Spec{Index: 0, Where: x, RateLimit: rl})}},
	}
	enr := enrich.New(enrich.Options{NoSeed: true}, reg, log)
	b := New(plan, seqtrack.Options{}, enr, reg, log)
	enrCtx, stopEnr := context.WithCancel(context.Background())
	enrDone := make(chan struct{})
	go func() { enr.Run(enrCtx); close(enrDone) }()
	var all []uint32
	for i := range 30 {
		pid := uint32(10 + i) // 10..19 pass the where, 20..39 do not
		all = append(all, pid)
		dg := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: uint32(i)},
			cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}))
		b.Handle([]cnmsg.Datagram{{Data: dg}}, time.Now())
	}
	// The stop: the reader, then the enricher (flushing the stage to the
	// sinks), then the sinks.
	b.Handle(nil, time.Now())
	stopEnr()
	<-enrDone
	for _, r := range runners {
		r.Stop()
	}
	wg.Wait()
	cancel()

	pidsA, suppA := outs[0].got()
	if want := []uint32{10, 11, 12}; !slices.Equal(pidsA, want) || suppA != 7 {
		t.Errorf("sink a: got %v and %d suppressed, want %v (the burst) and 7", pidsA, suppA, want)
	}
	pidsB, suppB := outs[1].got()
	if !slices.Equal(pidsB, all) || suppB != 7 {
		t.Errorf("sink b: got %v and %d suppressed, want every pid (route 1) and 7", pidsB, suppB)
	}
	if pidsT, _ := outs[2].got(); !slices.Equal(pidsT, all) {
		t.Errorf("tap: got %v, want every pid", pidsT)
	}
	for outcome, want := range map[string]float64{"sent": 3, "filtered": 20, "suppressed": 7} {
		if got := testutil.ToFloat64(b.sel.records.WithLabelValues("0", outcome)); got != want {
			t.Errorf("cnbridged_route_records_total{outcome=%q} got %v, want %v", outcome, got, want)
		}
	}
}

// TestSelectionWhereErrors: a record the where cannot be evaluated on
// (data is absent from a process event) is not sent by the route, is
// counted as where_error, and the error is logged once, with the route.
func TestSelectionWhereErrors(t *testing.T) {
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	x, err := env.Compile(`data == "x"`)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	s := newSelector(prometheus.NewRegistry(), zap.New(core), nil)
	p := &Plan{Encoder: event.NewEncoder("h"), Stages: []*Stage{{Route: 4, Sinks: 1,
		Sel: selection.New(selection.Spec{Index: 4, Where: x})}}}
	b := procBatch(
		cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1, TGID: 1},
		cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 2, TGID: 2},
		cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 3, TGID: 3})
	for i := range b.Records {
		b.Records[i].Targets, b.Records[i].Stages, b.Records[i].SelectTargets = 1, 1, 1
	}
	s.batch(b, p)
	for i, r := range b.Records {
		if r.Unselected != 1 {
			t.Errorf("record %d: Unselected %b, want the sink left out", i, r.Unselected)
		}
	}
	if got := testutil.ToFloat64(s.records.WithLabelValues("4", "where_error")); got != 3 {
		t.Errorf("where_error got %v, want 3", got)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d log lines, want 1 (rate-limited)", n)
	}
	if f := logs.All()[0].ContextMap(); f["route"] != int64(4) || f["error"] == nil {
		t.Errorf("log fields %v, want route 4 and the error", f)
	}
}

// procBatch returns a batch of process events, as the reader stores them.
func procBatch(evs ...cnmsg.ProcEvent) *event.Batch {
	b := event.NewPool().Get()
	for _, ev := range evs {
		b.Add(&event.Record{HasProc: true, Proc: ev, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Targets: 1})
	}
	return b
}
