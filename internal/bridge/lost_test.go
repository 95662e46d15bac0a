package bridge

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

type nopTarget struct{}

func (nopTarget) Offer(*event.Batch) {}

// TestLostWhenNotListening: the gap a stream resumed from the restart trace
// shows at its first message is counted when="not_listening"; every other
// gap — later ones on that stream, gaps on streams not resumed — is loss
// while listening. With a reorder window the restart holes, the oldest,
// are declared first.
func TestLostWhenNotListening(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		window                int
		seqs                  [][2]uint32 // cpu, seq
		listening, notListing float64
	}{
		{"no window", 0, [][2]uint32{
			{0, 110}, // resumed at 100: 101..109, restart gap
			{0, 113}, // 111..112 lost while listening
			{1, 51},  // resumed at 50: no gap (a clean stop as the only listener)
			{1, 55},  // 52..54 while listening
			{2, 5},   // not resumed: its first message sets its base
			{2, 8},   // 6..7 while listening
		}, 2 + 3 + 2, 9},
		{"window 4", 4, [][2]uint32{
			{0, 110}, // 101..109: 101..105 declared at once (restart), 106..109 held
			{0, 113}, // 106..108 leave the window (restart); 109, 111, 112 held
			{0, 120}, // 109 (restart), 111, 112, 114, 115 (listening); 116..119 held
			{0, 126}, // 116..119 and 121 (listening); 122..125 held
		}, 4 + 5, 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			b := New(planFor(nopTarget{}), seqtrack.Options{ReorderWindow: tt.window}, EnrichOptions{}, reg, zap.NewNop())
			b.Resume([]KernelStream{
				{ID: cnmsg.ID{Idx: 1, Val: 1}, CPU: 0, Seq: 100},
				{ID: cnmsg.ID{Idx: 1, Val: 1}, CPU: 1, Seq: 50},
			}, nil, time.Now())
			for _, s := range tt.seqs {
				dg := cnmsg.AppendMessage(nil, s[1], 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: s[1]},
					cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: s[0], PID: 1, TGID: 1}))
				b.Handle([]cnmsg.Datagram{{Data: dg}}, time.Now())
			}
			nl := testutil.ToFloat64(b.m.lost.WithLabelValues("1", "1", LostNotListening))
			l := testutil.ToFloat64(b.m.lost.WithLabelValues("1", "1", LostListening))
			if nl != tt.notListing || l != tt.listening {
				t.Errorf("got not_listening %v, listening %v; want %v, %v", nl, l, tt.notListing, tt.listening)
			}
		})
	}
}
