package sinks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
)

// conformance is the Sink contract (sink.go) as a suite of named cases,
// each stating the rule it checks, run by every implementation (model:
// testing/slogtest). An implementation supplies open, and broken when it
// can be made to fail.
type conformance struct {
	// open returns a fresh sink counting into c and a function that reads
	// back what it published, as JSON objects in publish order (at least
	// "seq"; "data" when the format carries it). read is called after
	// Close.
	open func(t *testing.T, c *Counters) (Sink, func() []map[string]any)
	// broken returns a sink whose destination fails every write, or is
	// nil when the implementation cannot be made to fail here.
	broken func(t *testing.T, c *Counters) Sink
}

// conformanceCase is one rule of the contract.
type conformanceCase struct {
	name string
	rule string // what the contract promises
	run  func(t *testing.T, cf conformance)
}

var conformanceCases = []conformanceCase{
	{
		name: "selection-kinds",
		rule: "suppression and life records (a route's rate limit and fold) are published once each, in order with the messages around them, and counted sent",
		run: func(t *testing.T, cf conformance) {
			c := testCountersFor()
			s, read := cf.open(t, c)
			now := time.Now().UnixNano()
			writeN(t, s, 0, 1)
			for _, r := range []event.Record{
				{Kind: event.KindSuppressed, Time: now, Targets: 1, Suppressed: &event.Suppressed{Route: 1,
					Key: []event.KeyValue{{Path: "process.exe", Value: "/usr/bin/cc"}}, Count: 95, From: now - 2e9, To: now - 1e9}},
				{Kind: event.KindSuppressed, Time: now, Targets: 1, Suppressed: &event.Suppressed{Route: 1,
					Key: []event.KeyValue{{Path: "process.exe", Value: "/usr/bin/ld"}}, Count: 3, From: now - 2e9, To: now - 1e9}},
				{Kind: event.KindLife, Time: now, Targets: 1, Life: &event.Life{
					Process: fields.Some(fields.Process{EntityID: fields.Some("b:7:1"), Exe: fields.Some("/usr/bin/sleep")}),
					Life:    fields.Life{Events: 3, Forked: true, ExitStatus: fields.Some[int64](0)}}},
			} {
				if err := s.Write(&r); err != nil {
					t.Fatalf("Write %v: %v", r.Kind, err)
				}
			}
			writeN(t, s, 1, 2)
			closeSink(t, s)
			got := read()
			if len(got) != 5 {
				t.Fatalf("published %d records, want 5: %v", len(got), got)
			}
			if got[0]["seq"] != float64(0) || got[4]["seq"] != float64(1) {
				t.Errorf("first and last published %v and %v, want seq 0 and 1", got[0], got[4])
			}
			for i, want := range []string{"suppressed", "suppressed", "life"} {
				o := got[i+1]
				if _, ok := o["seq"]; ok {
					t.Errorf("record %d %v has a seq, want a %s record", i+1, o, want)
				}
				if typ, ok := o["type"]; ok && typ != want {
					t.Errorf("record %d has type %v, want %s", i+1, typ, want)
				}
			}
			checkCounts(t, c, counts{sent: 5})
		},
	},
	{
		name: "order",
		rule: "through a runner, every record for the sink is published once, in order, and counted sent; records for other sinks are not",
		run:  testThroughRunner,
	},
	{
		name: "close-drains",
		rule: "Close publishes and counts what was written without a Flush",
		run: func(t *testing.T, cf conformance) {
			c := testCountersFor()
			s, read := cf.open(t, c)
			writeN(t, s, 0, 100)
			closeSink(t, s)
			checkSeqs(t, read(), 0, 100)
			checkCounts(t, c, counts{sent: 100})
		},
	},
	{
		name: "empty",
		rule: "Flush and Close with nothing written publish and count nothing",
		run: func(t *testing.T, cf conformance) {
			c := testCountersFor()
			s, read := cf.open(t, c)
			if err := s.Flush(context.Background()); err != nil {
				t.Errorf("Flush: %v", err)
			}
			closeSink(t, s)
			if got := read(); len(got) != 0 {
				t.Errorf("published %d records, want none", len(got))
			}
			checkCounts(t, c, counts{})
		},
	},
	{
		name: "copies",
		rule: "a record and its data are valid only during Write: changing them afterwards changes nothing published",
		run: func(t *testing.T, cf conformance) {
			c := testCountersFor()
			s, read := cf.open(t, c)
			data := []byte("original")
			r := event.Record{Time: time.Now().UnixNano(), Targets: 1, Msg: cnmsg.Message{
				ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: 7, Len: uint16(len(data)), Data: data}}
			if err := s.Write(&r); err != nil {
				t.Fatal(err)
			}
			r.Msg.Seq = 8
			copy(data, "CHANGED!")
			closeSink(t, s)
			got := read()
			checkSeqs(t, got, 7, 1)
			if len(got) == 1 {
				if d, ok := got[0]["data"]; ok && d != base64.StdEncoding.EncodeToString([]byte("original")) {
					t.Errorf("data %v, want the bytes as they were during Write", d)
				}
			}
		},
	},
	{
		name: "cancelled-runner",
		rule: "when the runner's context ends mid-stream, every offered record is still counted exactly once (sent, failed or dropped)",
		run: func(t *testing.T, cf conformance) {
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			c := m.Counters("s")
			s, _ := cf.open(t, c)
			r := NewRunner(RunnerConfig{Name: "s", Slot: 0, QueueSize: 1 << 20, QueueMaxBytes: 1 << 30}, s, m, zaptest.NewLogger(t))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			pool := event.NewPool()
			const n = 5000
			offer(r, pool, 0, n/2)
			cancel()
			offer(r, pool, n/2, n)
			r.Stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			l := readLedger(c)
			if l.sent+l.failed+l.dropped != n {
				t.Errorf("sent %v + failed %v + dropped %v = %v, want the %d offered", l.sent, l.failed, l.dropped, l.sent+l.failed+l.dropped, n)
			}
		},
	},
	{
		name: "counts-on-error",
		rule: "when the destination fails, every record written is counted failed or dropped, never sent, and Write does not return an error for it",
		run: func(t *testing.T, cf conformance) {
			if cf.broken == nil {
				t.Skip("this sink cannot be made to fail here")
			}
			c := testCountersFor()
			s := cf.broken(t, c)
			writeN(t, s, 0, 50)
			if err := s.Flush(context.Background()); err != nil {
				t.Errorf("Flush: %v", err)
			}
			closeSink(t, s)
			l := readLedger(c)
			if l.sent != 0 || l.failed+l.dropped != 50 {
				t.Errorf("counts %+v, want the 50 records failed or dropped", l)
			}
		},
	},
	{
		name: "concurrent-observers",
		rule: "Ready and Pending may be called from any goroutine at any time, also during Write, Flush and Close",
		run: func(t *testing.T, cf conformance) {
			c := testCountersFor()
			s, read := cf.open(t, c)
			rd, isReadier := s.(Readier)
			pd, isPender := s.(Pender)
			if !isReadier && !isPender {
				t.Skip("the sink implements neither Readier nor Pender")
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if isReadier {
						_ = rd.Ready()
					}
					if isPender && pd.Pending() < 0 {
						t.Error("Pending < 0")
						return
					}
				}
			}()
			for i := 0; i < 1000; i += 100 {
				writeN(t, s, i, i+100)
				if err := s.Flush(context.Background()); err != nil {
					t.Errorf("Flush: %v", err)
				}
			}
			closeSink(t, s)
			close(stop)
			wg.Wait()
			checkSeqs(t, read(), 0, 1000)
			if isPender && pd.Pending() != 0 {
				t.Errorf("Pending %d after Close, want 0", pd.Pending())
			}
		},
	},
}

func (cf conformance) run(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log("rule: " + tc.rule)
			tc.run(t, cf)
		})
	}
}

func testThroughRunner(t *testing.T, cf conformance) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c := m.Counters("s")
	s, read := cf.open(t, c)
	r := NewRunner(RunnerConfig{Name: "s", Slot: 3, QueueSize: 1 << 20, QueueMaxBytes: 1 << 30}, s, m, zaptest.NewLogger(t))
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()

	pool := event.NewPool()
	const n = 1000
	sent := 0
	for i := 0; i < n; {
		b := pool.Get()
		for ; i < n && b.Fits(8); i++ {
			rec := event.Record{Time: time.Now().UnixNano(), Msg: cnmsg.Message{
				ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: uint32(i), Len: 8, Data: []byte(fmt.Sprintf("%08d", i)),
			}}
			// Every third record is for another sink and must not show up.
			if i%3 == 0 {
				rec.Targets = 1 << 5
			} else {
				rec.Targets = 1 << 3
				sent++
			}
			b.Add(&rec)
		}
		r.Offer(b)
		b.Release()
	}
	r.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := read()
	if len(got) != sent {
		t.Fatalf("published %d records, want %d", len(got), sent)
	}
	want := 0
	for _, o := range got {
		for want%3 == 0 {
			want++
		}
		if o["seq"] != float64(want) {
			t.Fatalf("record seq %v, want %d (order or filtering broken)", o["seq"], want)
		}
		want++
	}
	checkCounts(t, c, counts{sent: float64(sent)})
}

func testCountersFor() *Counters { return NewMetrics(prometheus.NewRegistry()).Counters("s") }

// writeN writes records numbered from..to-1 (seq) straight to s.
func writeN(t *testing.T, s Sink, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		r := event.Record{Time: time.Now().UnixNano(), Targets: 1, Msg: cnmsg.Message{
			ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: uint32(i), Len: 8, Data: []byte(fmt.Sprintf("%08d", i))}}
		if err := s.Write(&r); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
}

// offer offers records numbered from..to-1 to r in batches.
func offer(r *Runner, pool *event.Pool, from, to int) {
	for i := from; i < to; {
		b := pool.Get()
		for ; i < to && b.Fits(8); i++ {
			rec := event.Record{Time: time.Now().UnixNano(), Targets: r.Bit(), Msg: cnmsg.Message{
				ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: uint32(i), Len: 8, Data: []byte(fmt.Sprintf("%08d", i))}}
			b.Add(&rec)
		}
		r.Offer(b)
		b.Release()
	}
}

func closeSink(t *testing.T, s Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// checkSeqs checks that got holds records with seq from..from+n-1, in
// order, each once.
func checkSeqs(t *testing.T, got []map[string]any, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("published %d records, want %d", len(got), n)
	}
	for i, o := range got {
		if o["seq"] != float64(from+i) {
			t.Fatalf("record %d has seq %v, want %d", i, o["seq"], from+i)
		}
	}
}

func checkCounts(t *testing.T, c *Counters, want counts) {
	t.Helper()
	if got := readLedger(c); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

var _ Sink = (*Stream)(nil)
var _ Sink = (*File)(nil)

func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i == len(b) {
			t.Fatalf("last line has no newline: %q", b)
		}
		var o map[string]any
		if err := json.Unmarshal(b[:i], &o); err != nil {
			t.Fatalf("line is not JSON: %v: %q", err, b[:i])
		}
		out = append(out, o)
		b = b[i+1:]
	}
	return out
}
