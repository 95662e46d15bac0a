package bridge

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// TestRejectedFloodAllocatesNothing: a flood of spoofed or malformed
// datagrams is counted without allocating (the warning is rate-limited
// before its fields are built).
func TestRejectedFloodAllocatesNothing(t *testing.T) {
	pat, _ := router.ParsePattern("1.1")
	b := New(&Plan{Table: router.New([]router.Route{{Match: pat, Sinks: 1}})},
		seqtrack.Options{}, EnrichOptions{}, prometheus.NewRegistry(), zap.NewNop())
	spoof := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}},
		cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1}))
	short := spoof[:20]
	dgs := []cnmsg.Datagram{{Data: spoof, Sender: 4242}, {Data: short, Sender: 0}}
	now := time.Now()
	b.Handle(dgs, now) // first: the warnings are logged
	if a := testing.AllocsPerRun(100, func() { b.Handle(dgs, now) }); a != 0 {
		t.Errorf("allocs per batch of rejected datagrams = %v, want 0", a)
	}
	if got := testutil.ToFloat64(b.m.rejUntrusted); got != 102 {
		t.Errorf("untrusted counted %v, want 102", got)
	}
	if got := testutil.ToFloat64(b.m.rejMalformed); got != 102 {
		t.Errorf("malformed counted %v, want 102", got)
	}
}

// TestRouteFilteredIsNotUnrouted: a process event that a route's id
// matches but its events: list leaves out is counted as filtered; only a
// message no route's id matches is unrouted.
func TestRouteFilteredIsNotUnrouted(t *testing.T) {
	pat, _ := router.ParsePattern("1.1")
	exits, _ := router.ParseEvents([]string{"exit"})
	b := New(&Plan{Table: router.New([]router.Route{{Match: pat, Events: exits, HasEvents: true, Sinks: 1}})},
		seqtrack.Options{}, EnrichOptions{}, prometheus.NewRegistry(), zap.NewNop())
	exec := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}},
		cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1}))
	other := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 5, Val: 5}}, []byte("x"))
	b.Handle([]cnmsg.Datagram{{Data: exec}, {Data: other}}, time.Now())
	if got := testutil.ToFloat64(b.m.routeFiltered); got != 1 {
		t.Errorf("route filtered got %v, want 1 (the exec)", got)
	}
	if got := testutil.ToFloat64(b.m.rejUnr); got != 1 {
		t.Errorf("unrouted got %v, want 1 (the 5.5 message)", got)
	}
}
