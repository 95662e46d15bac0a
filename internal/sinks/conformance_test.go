package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// conformance is the contract every sink passes: it is driven through a
// real Runner, publishes every record exactly once and in order, counts
// each as sent, and flushes on Close.
type conformance struct {
	// open returns a fresh sink and a function that reads back what it
	// published, as JSON objects in order.
	open func(t *testing.T, c *Counters) (Sink, func() []map[string]any)
}

func (cf conformance) run(t *testing.T) {
	t.Run("every record once, in order, counted", func(t *testing.T) {
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
		if v := testutil.ToFloat64(c.Sent); v != float64(sent) {
			t.Errorf("sent counter %v, want %d", v, sent)
		}
		if v := testutil.ToFloat64(c.Failed) + testutil.ToFloat64(c.dropped); v != 0 {
			t.Errorf("failed+dropped %v, want 0", v)
		}
	})
}

var _ Sink = (*Stream)(nil)
var _ Sink = (*File)(nil)

// discard counts records and publishes nothing: the runner's own tests.
type discard struct {
	c       *Counters
	written []uint32
	block   chan struct{}
}

func (d *discard) Write(r *event.Record) error {
	if d.block != nil {
		<-d.block
	}
	d.written = append(d.written, r.Msg.Seq)
	d.c.Sent.Inc()
	return nil
}
func (d *discard) Flush(context.Context) error { return nil }
func (d *discard) Close(context.Context) error { return nil }

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
