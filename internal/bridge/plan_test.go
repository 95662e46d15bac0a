package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// retirable is a Target that notes batches offered after it was retired.
type retirable struct {
	retired       atomic.Bool
	offered, late atomic.Int64
	block         chan struct{} // when set, Offer waits for it to close
}

func (r *retirable) Offer(*event.Batch) {
	if r.block != nil {
		<-r.block
	}
	if r.retired.Load() {
		r.late.Add(1)
		return
	}
	r.offered.Add(1)
}

func planFor(t Target) *Plan {
	pat, _ := router.ParsePattern("1.1")
	return &Plan{Table: router.New([]router.Route{{Match: pat, Sinks: 1}}), Sinks: []Target{t}}
}

func procDatagram() []cnmsg.Datagram {
	dg := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}},
		cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1}))
	return []cnmsg.Datagram{{Data: dg}}
}

// TestPlanSwapNoBatchReachesRetiredSink: the reader handles batches
// without pause while plans are swapped under it; after SetPlan and
// Release return, the old plan's sink is retired and must never be offered
// a batch again. (Before the fix the reader loaded the plan and published
// it in two steps: a swap in between let a batch reach a retired sink,
// counted there as queue_full.)
func TestPlanSwapNoBatchReachesRetiredSink(t *testing.T) {
	first := &retirable{}
	b := New(planFor(first), seqtrack.Options{}, EnrichOptions{}, prometheus.NewRegistry(), zap.NewNop())
	dgs := procDatagram()
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
			b.Handle(dgs, time.Now())
		}
	}()
	cur := first
	all := []*retirable{first}
	for range 20000 {
		next := &retirable{}
		all = append(all, next)
		old := b.SetPlan(planFor(next))
		if err := b.Release(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		cur.retired.Store(true)
		cur = next
	}
	close(stop)
	wg.Wait()
	var late, offered int64
	for _, r := range all {
		late += r.late.Load()
		offered += r.offered.Load()
	}
	if late != 0 {
		t.Errorf("%d batches reached a retired sink (of %d offered)", late, offered+late)
	}
	if offered == 0 {
		t.Fatal("the reader offered nothing: the test did not exercise the swap")
	}
}

// TestReleaseNotBlockedByStalledSink: a reader stuck offering to a stalled
// sink (when_full: block) does not hold a plan swap forever: Release
// returns the context's error, and returns nil once the reader moves on.
func TestReleaseNotBlockedByStalledSink(t *testing.T) {
	stalled := &retirable{block: make(chan struct{})}
	b := New(planFor(stalled), seqtrack.Options{}, EnrichOptions{}, prometheus.NewRegistry(), zap.NewNop())
	handled := make(chan struct{})
	go func() { b.Handle(procDatagram(), time.Now()); close(handled) }()
	for b.active.Load() == nil { // the reader is in Handle, stuck in Offer
		time.Sleep(time.Millisecond)
	}
	old := b.SetPlan(planFor(&retirable{}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Release(ctx, old); err == nil {
		t.Fatal("Release returned nil while the reader still used the old plan")
	}
	close(stalled.block)
	<-handled
	if err := b.Release(context.Background(), old); err != nil {
		t.Fatalf("Release after the reader moved on: %v", err)
	}
}
