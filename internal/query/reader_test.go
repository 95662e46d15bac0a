package query

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// latencySink records, per record, how long after the reader handled it
// the sink got it (enrichment included: an enriching route's sink waits
// for it).
type latencySink struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (s *latencySink) Write(r *event.Record) error {
	d := time.Since(time.Unix(0, r.Time))
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
	return nil
}
func (s *latencySink) Flush(context.Context) error { return nil }
func (s *latencySink) Close(context.Context) error { return nil }

func (s *latencySink) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lat
	s.lat = nil
	return l
}

// forkDatagram is a kernel fork event of child from parent, stamped in the
// middle of a clock tick (no start read).
func forkDatagram(seq, parent, child uint32, ts uint64) cnmsg.Datagram {
	ev := cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: parent, ParentTGID: parent, ChildPID: child, ChildTGID: child, TimestampNs: ts}
	return cnmsg.Datagram{Data: cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}, Seq: seq}, cnmsg.AppendProc(nil, ev))}
}

func exitDatagram(seq, pid uint32, ts uint64) cnmsg.Datagram {
	ev := cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid, TimestampNs: ts}
	return cnmsg.Datagram{Data: cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}, Seq: seq}, cnmsg.AppendProc(nil, ev))}
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(int(float64(len(d))*q), len(d)-1)]
}

// BenchmarkReaderDuringPS measures what a ps over a 65 536-entry process
// table costs the event path: the reader handles fork and exit events at
// 20 000 a second (batches of 64) into an enriching route while, in two of
// every three 2 s phases, a query goroutine answers ps with a where
// expression over the whole table as fast as it can (one answer at a time,
// as the daemon does). Interleaved phases, three of each. Reported: the reader's
// time per batch (Handle: what the kernel socket waits for) and the time
// from the reader to the sink (the enricher's delay, which the snapshot
// adds to), p50 and p99, without the queries, with them at the reader's
// priority, and with them at the lowest (nice 19, as the daemon answers),
// and how long a ps took. Run it alone: -bench ReaderDuringPS -benchtime 1x.
func BenchmarkReaderDuringPS(b *testing.B) {
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	sink := &latencySink{}
	r := sinks.NewRunner(sinks.RunnerConfig{Name: "lat", Slot: 0, QueueSize: 1 << 16, QueueMaxBytes: 64 << 20, WhenFull: sinks.Block},
		sink, sinks.NewMetrics(reg), log)
	proc, _ := router.ParsePattern("1.1")
	plan := &bridge.Plan{Table: router.New([]router.Route{{Match: proc, Sinks: 1, Enrich: true}}), Sinks: []bridge.Target{r}, Enrich: true}
	br := bridge.New(plan, seqtrack.Options{MaxStreams: 1024}, bridge.EnrichOptions{MaxEntries: proctable.DefaultMaxEntries}, reg, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.Run(ctx) }()
	go func() { defer wg.Done(); br.RunEnricher(ctx) }()
	defer func() { r.Stop(); cancel(); wg.Wait() }()

	// Fill the table: a tree of forks under this process (seeded from
	// /proc at the enricher's start), up to the bound.
	self := uint32(os.Getpid())
	seq := uint32(0)
	// Forks are stamped from now on, in the middle of each clock tick
	// (CLOCK_MONOTONIC; the table's ticks are CLOCK_BOOTTIME, which is
	// ahead of it by the time suspended: never on this VM), after this
	// process started, so the table links them to it.
	var mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	ts := uint64(mono.Nano()) - uint64(mono.Nano())%10_000_000 + 5_000_000
	next := func() (uint32, uint64) { seq++; ts += 10_000_000; return seq, ts }
	batch := make([]cnmsg.Datagram, 0, 64)
	flush := func() time.Duration {
		start := time.Now()
		br.Handle(batch, start)
		d := time.Since(start)
		batch = batch[:0]
		return d
	}
	const base = 4_000_000
	for i := uint32(0); i < proctable.DefaultMaxEntries-256; i++ {
		parent := self
		if i >= 64 {
			parent = base + i/2
		}
		s, t := next()
		batch = append(batch, forkDatagram(s, parent, base+i, t))
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	var snapTime []time.Duration
	var snapMu sync.Mutex
	snapshot := func(ctx context.Context) (*proctable.Snapshot, string, error) {
		start := time.Now()
		s, err := br.Snapshot(ctx)
		snapMu.Lock()
		snapTime = append(snapTime, time.Since(start))
		snapMu.Unlock()
		return s.Snapshot, s.Incomplete, err
	}
	for {
		s, _, err := snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Entries) >= proctable.DefaultMaxEntries-256 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sink.take()
	compile, err := WhereCompiler()
	if err != nil {
		b.Fatal(err)
	}
	resp := NewResponder(ResponderConfig{Host: "h", Snapshot: snapshot, Compile: compile, MaxRows: 1000, MaxPerSecond: 1 << 20})
	body, _ := json.Marshal(Request{Where: `process.exe.endsWith("/nc") || "--token" in process.cmdline`, TimeoutMs: 30_000})

	type phase struct {
		handle, sink []time.Duration
		answers      int
		answerTime   time.Duration
	}
	// Phases in turn: no ps, ps at the caller's priority, ps at the
	// lowest (as the daemon answers).
	var phases [3]phase
	child := uint32(5_000_000)
	b.ResetTimer()
	for range b.N {
		for round := range 9 {
			kind := round % 3
			querying := kind > 0
			resp.normalPriority = kind == 1
			var stop atomic.Bool
			done := make(chan phase, 1)
			if querying {
				go func() {
					var p phase
					for !stop.Load() {
						start := time.Now()
						if a := resp.Answer(context.Background(), OpPS, body, 1<<20); a.Error != "" || a.Table.Processes < 60_000 {
							panic(fmt.Sprintf("ps: %+v", a))
						}
						p.answers++
						p.answerTime += time.Since(start)
					}
					done <- p
				}()
			}
			var handle []time.Duration
			end := time.Now().Add(2 * time.Second)
			tick := time.NewTicker(3200 * time.Microsecond) // 64 events every 3.2 ms: 20 000/s
			for time.Now().Before(end) {
				<-tick.C
				for range 32 {
					s, t := next()
					batch = append(batch, forkDatagram(s, self, child, t))
					s, t = next()
					batch = append(batch, exitDatagram(s, child, t))
					child++
				}
				handle = append(handle, flush())
			}
			tick.Stop()
			stop.Store(true)
			p := &phases[kind]
			if querying {
				q := <-done
				p.answers += q.answers
				p.answerTime += q.answerTime
			}
			// What the sink still has to get belongs to this phase.
			time.Sleep(200 * time.Millisecond)
			p.handle = append(p.handle, handle...)
			p.sink = append(p.sink, sink.take()...)
		}
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	for i, name := range []string{"", "-ps", "-ps-nice"} {
		p := &phases[i]
		b.ReportMetric(us(quantile(p.handle, 0.5)), "handle-p50-µs"+name)
		b.ReportMetric(us(quantile(p.handle, 0.99)), "handle-p99-µs"+name)
		b.ReportMetric(us(quantile(p.sink, 0.5)), "sink-p50-µs"+name)
		b.ReportMetric(us(quantile(p.sink, 0.99)), "sink-p99-µs"+name)
		if p.answers > 0 {
			b.ReportMetric(float64(p.answerTime.Milliseconds())/float64(p.answers), "ps-ms"+name)
		}
		b.Logf("phase %q: %d events, %d reader batches, %d ps answers", name, len(p.sink), len(p.handle), p.answers)
	}
	snapMu.Lock()
	b.ReportMetric(us(quantile(snapTime, 0.5)), "snapshot-p50-µs")
	snapMu.Unlock()
}
