package sinks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// lines records the JSON lines written to it.
type lines struct {
	enc *event.Encoder
	got chan string
}

func (l *lines) Write(r *event.Record) error {
	l.got <- string(l.enc.AppendJSON(nil, r))
	return nil
}
func (l *lines) Flush(context.Context) error { return nil }
func (l *lines) Close(context.Context) error { return nil }

// TestRunnerWaitsOnlyForEnrichingSinks (issue 11 item 5): a record
// enriched for sink 0 only goes out to sink 1 at once, without waiting for
// an enrichment that never ends, and without "process".
func TestRunnerWaitsOnlyForEnrichingSinks(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	out := &lines{enc: event.NewEncoder("h"), got: make(chan string, 4)}
	plain := NewRunner(RunnerConfig{Name: "plain", Slot: 1, QueueSize: 16}, out, m, zaptest.NewLogger(t))
	pool := event.NewPool()
	b := pool.Get()
	b.Add(&event.Record{HasProc: true, Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 7, TGID: 7},
		Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Targets: 0b11, EnrichTargets: 0b01, Enrich: event.EnrichPending})
	b.StartEnrich() // the enricher never finishes in this test
	plain.Offer(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- plain.Run(ctx) }()
	select {
	case l := <-out.got:
		if strings.Contains(l, `"process"`) {
			t.Errorf("plain sink got %s, want no process", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plain sink waited for another sink's enrichment")
	}
	plain.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.EnrichDone()
	b.Release()
}
