package bridge_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// benchID is the synthetic connector id the load harness uses too.
var benchID = cnmsg.ID{Idx: 2718, Val: 28}

// encodeSink is a sink that encodes every record into a reused buffer and
// throws the bytes away: the cost of a line sink without the write(2).
type encodeSink struct {
	enc   *event.Encoder
	buf   []byte
	lines atomic.Int64 // read by the test while the runner may still write
}

func (s *encodeSink) Write(r *event.Record) error {
	s.buf = s.enc.AppendJSON(s.buf[:0], r)
	s.lines.Add(1)
	return nil
}
func (s *encodeSink) Flush(context.Context) error { return nil }
func (s *encodeSink) Close(context.Context) error { return nil }

var _ sinks.Sink = (*encodeSink)(nil)

// synthetic returns n datagrams as the listener hands them over: 64-byte
// payloads from a userspace sender, seq continuing from seq0.
func synthetic(n int, seq0 uint32) []cnmsg.Datagram {
	dgs := make([]cnmsg.Datagram, n)
	payload := make([]byte, 64)
	for i := range dgs {
		binary.NativeEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		b := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: benchID, Seq: seq0 + uint32(i)}, payload)
		dgs[i] = cnmsg.Datagram{Data: b, Sender: 4242}
	}
	return dgs
}

// renumber rewrites the cn_msg seq of every datagram so the ledger sees a
// contiguous stream across iterations (no loss markers, no resets).
func renumber(dgs []cnmsg.Datagram, seq0 uint32) uint32 {
	for i := range dgs {
		binary.NativeEndian.PutUint32(dgs[i].Data[cnmsg.NlmsgHdrLen+8:], seq0)
		seq0++
	}
	return seq0
}

// procDatagrams returns n kernel (sender 0) fork events, seq contiguous per
// CPU 0.
func procDatagrams(n int) []cnmsg.Datagram {
	dgs := make([]cnmsg.Datagram, n)
	for i := range dgs {
		ev := cnmsg.ProcEvent{What: cnmsg.ProcFork, CPU: 0, TimestampNs: uint64(i), ParentPID: 1, ParentTGID: 1, ChildPID: uint32(1000 + i), ChildTGID: uint32(1000 + i)}
		data := cnmsg.AppendProc(nil, ev)
		b := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}, Seq: uint32(i)}, data)
		dgs[i] = cnmsg.Datagram{Data: b}
	}
	return dgs
}

type rig struct {
	b      *bridge.Bridge
	runner *sinks.Runner
	sink   *encodeSink
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newRig builds the real path: a bridge whose plan routes benchID and 1.1
// to one runner over an encoding sink. With run, the runner's goroutine
// drains the queue as the daemon's does.
func newRig(tb testing.TB, whenFull sinks.WhenFull, run bool) *rig {
	tb.Helper()
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	m := sinks.NewMetrics(reg)
	s := &encodeSink{enc: event.NewEncoder("bench-host"), buf: make([]byte, 0, 4096)}
	r := sinks.NewRunner(sinks.RunnerConfig{
		Name: "bench", Slot: 0, QueueSize: 1 << 16, QueueMaxBytes: 64 << 20, WhenFull: whenFull,
	}, s, m, log)
	pat, err := router.ParsePattern("2718.28")
	if err != nil {
		tb.Fatal(err)
	}
	proc, _ := router.ParsePattern("1.1")
	plan := &bridge.Plan{
		Table: router.New([]router.Route{
			{Match: pat, Sinks: 1, LossMarkers: true},
			{Match: proc, Sinks: 1, LossMarkers: true},
		}),
		Sinks:   []bridge.Target{r},
		Trusted: []router.Pattern{pat},
	}
	rg := &rig{
		b:      bridge.New(plan, seqtrack.Options{MaxStreams: 65536}, bridge.EnrichOptions{}, reg, log),
		runner: r,
		sink:   s,
	}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		rg.cancel = cancel
		rg.wg.Add(1)
		go func() {
			defer rg.wg.Done()
			r.Run(ctx)
		}()
	}
	tb.Cleanup(rg.stop)
	return rg
}

func (rg *rig) stop() {
	rg.runner.Stop()
	if rg.cancel != nil {
		rg.wg.Wait()
		rg.cancel()
	}
}

// BenchmarkHandle is the reader goroutine's cost per message: trust check,
// decode, ledger, route, copy into a batch, queue push (a runner goroutine
// drains and encodes concurrently, as in the daemon). ns/op is per message.
func BenchmarkHandle(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(batchName(size), func(b *testing.B) {
			rg := newRig(b, sinks.Block, true)
			dgs := synthetic(size, 0)
			seq := uint32(0)
			b.ReportAllocs()
			b.ResetTimer()
			now := time.Now()
			for i := 0; i < b.N; i += size {
				seq = renumber(dgs, seq)
				rg.b.Handle(dgs, now)
			}
		})
	}
}

// BenchmarkHandleProc is BenchmarkHandle for kernel fork events: adds the
// proc_event decode and per-CPU ledger.
func BenchmarkHandleProc(b *testing.B) {
	rg := newRig(b, sinks.Block, true)
	dgs := procDatagrams(64)
	seq := uint32(0)
	b.ReportAllocs()
	b.ResetTimer()
	now := time.Now()
	for i := 0; i < b.N; i += len(dgs) {
		seq = renumber(dgs, seq)
		rg.b.Handle(dgs, now)
	}
}

// BenchmarkDecode is cnmsg.Next plus DecodeProc on one datagram.
func BenchmarkDecode(b *testing.B) {
	d := procDatagrams(1)[0].Data
	b.ReportAllocs()
	for b.Loop() {
		m, _, err := cnmsg.Next(d)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cnmsg.DecodeProc(m.Data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoute is one routing decision over a two-route table.
func BenchmarkRoute(b *testing.B) {
	pat, _ := router.ParsePattern("2718.28")
	proc, _ := router.ParsePattern("1.1")
	ev, _ := router.ParseEvents([]string{"fork", "exec", "exit"})
	t := router.New([]router.Route{
		{Match: pat, Sinks: 1},
		{Match: proc, Sinks: 2, Events: ev, HasEvents: true},
	})
	pe := &cnmsg.ProcEvent{What: cnmsg.ProcExec}
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink += t.Match(cnmsg.ID{Idx: 1, Val: 1}, pe)
	}
	if sink == 0 {
		b.Fatal("unrouted")
	}
}

// BenchmarkEncode is the sink side: one record encoded as a JSON line.
func BenchmarkEncode(b *testing.B) {
	enc := event.NewEncoder("bench-host")
	m, _, _ := cnmsg.Next(synthetic(1, 0)[0].Data)
	r := event.Record{Time: time.Now().UnixNano(), Sender: 4242, Msg: m, Targets: 1}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.AppendJSON(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func batchName(n int) string {
	if n == 1 {
		return "batch=1"
	}
	return "batch=64"
}

// TestHandleZeroAllocs asserts that the whole per-message path allocates
// nothing in steady state: receive batch → decode → ledger → route → batch
// → sink queue, and on the runner goroutine pop → encode → release back to
// the pool. AllocsPerRun counts mallocs in every goroutine, so the runner's
// side is included.
func TestHandleZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation test is not short")
	}
	for _, tc := range []struct {
		name string
		dgs  []cnmsg.Datagram
	}{
		{"synthetic", synthetic(64, 0)},
		{"proc", procDatagrams(64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := newRig(t, sinks.Block, true)
			seq := uint32(0)
			now := time.Now()
			// AllocsPerRun runs with GOMAXPROCS=1: yield until the runner has
			// drained the batch, so that each step is the whole path and the
			// batch is back in its pool before the next Handle takes one.
			step := func() {
				seq = renumber(tc.dgs, seq)
				rg.b.Handle(tc.dgs, now)
				for rg.runner.QueueLength() > 0 {
					runtime.Gosched()
				}
			}
			for range 200 { // warm the pool, the ledger stream and the metric series
				step()
			}
			waitDrained(t, rg.runner)
			got := testing.AllocsPerRun(500, step)
			waitDrained(t, rg.runner)
			if got != 0 {
				t.Errorf("allocs per batch of %d = %v, want 0", len(tc.dgs), got)
			}
			if rg.sink.lines.Load() == 0 {
				t.Error("the sink encoded nothing")
			}
		})
	}
}

func waitDrained(t *testing.T, r *sinks.Runner) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.QueueLength() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d records", r.QueueLength())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOverloadMemoryBounded is the short form of the harness's overload
// test: a sink that does not drain, fed one datagram per receive (the
// worst case: a reader that keeps up makes small batches). The queue must
// stay within queue_size, every record that did not fit must be counted as
// dropped, and the heap must stay within the queue's byte bound (twice
// queue_max_bytes, for the Go heap's headroom, plus 4 MiB).
func TestOverloadMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("memory test is not short")
	}
	const queueSize, queueBytes, offered = 1024, 1 << 20, 4096
	reg := prometheus.NewRegistry()
	m := sinks.NewMetrics(reg)
	r := sinks.NewRunner(sinks.RunnerConfig{
		Name: "stalled", Slot: 0, QueueSize: queueSize, QueueMaxBytes: queueBytes, WhenFull: sinks.DropNewest,
	}, &encodeSink{enc: event.NewEncoder("h")}, m, zap.NewNop())
	defer r.Stop()
	pat, _ := router.ParsePattern("2718.28")
	b := bridge.New(&bridge.Plan{
		Table:   router.New([]router.Route{{Match: pat, Sinks: 1}}),
		Sinks:   []bridge.Target{r},
		Trusted: []router.Pattern{pat},
	}, seqtrack.Options{}, bridge.EnrichOptions{}, reg, zap.NewNop())

	dgs := synthetic(1, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	seq := uint32(0)
	now := time.Now()
	for range offered {
		seq = renumber(dgs, seq)
		b.Handle(dgs, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)

	queued := r.QueueLength()
	if queued > queueSize {
		t.Errorf("queue holds %d records, more than queue_size %d", queued, queueSize)
	}
	dropped := gathered(t, reg, "cnbridged_sink_messages_total", "result", "dropped")
	if int(dropped)+queued != offered {
		t.Errorf("dropped %v + queued %d = %v, want every one of the %d offered records", dropped, queued, dropped+float64(queued), offered)
	}
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d records queued in %d batches; heap grew %.1f MiB (%.0f KiB per queued record)",
		queued, queued, float64(grown)/(1<<20), float64(grown)/1024/float64(max(queued, 1)))
	if limit := int64(2*queueBytes + 4<<20); grown > limit {
		t.Errorf("heap grew %.1f MiB with %d records queued, want ≤ %.1f MiB: queue_max_bytes does not bound the memory a queued batch holds",
			float64(grown)/(1<<20), queued, float64(limit)/(1<<20))
	}
	runtime.KeepAlive(b)
}

// gathered returns the value of the counter name whose labels include
// label=value.
func gathered(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
