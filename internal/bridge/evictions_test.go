package bridge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// TestEvictionsSurviveReenable: cnbridged_proctable_evictions_total is a
// counter. When enrichment is turned off and on again (a reload), the
// process table starts anew, but the count of evictions goes on from
// where it was; it used to fall back to the new table's count (0).
func TestEvictionsSurviveReenable(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnricher(EnrichOptions{MaxEntries: 8, NoSeed: true, ProcRoot: t.TempDir()}, reg, zaptest.NewLogger(t))
	pool := event.NewPool()
	forks := func(first, n uint32) {
		var evs []cnmsg.ProcEvent
		for pid := first; pid < first+n; pid++ {
			evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 1, ParentTGID: 1, ChildPID: pid, ChildTGID: pid})
		}
		b := procBatch(pool, evs...)
		enrichNow(e, b)
		b.Release()
	}
	forks(100, 40)
	before := evictions(t, reg)
	if before == 0 {
		t.Fatal("40 forks into a table of 8 evicted nothing")
	}
	// What the reader does when a plan turns enrichment on again.
	e.reseed.Store(true)
	forks(1000, 1)
	if after := evictions(t, reg); after < before {
		t.Errorf("cnbridged_proctable_evictions_total fell from %v to %v when enrichment was turned on again", before, after)
	}
	forks(2000, 20)
	if after := evictions(t, reg); after <= before {
		t.Errorf("cnbridged_proctable_evictions_total %v after 20 more forks into a full table, want more than %v", after, before)
	}
}

func evictions(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cnbridged_proctable_evictions_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no cnbridged_proctable_evictions_total")
	return 0
}
