package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

func TestGapJSON(t *testing.T) {
	from := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r := event.Record{Kind: event.KindGap, Time: from.Add(time.Minute).UnixNano(), Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}},
		Gap: &event.Gap{From: from.UnixNano(), To: from.Add(time.Minute).UnixNano(), PIDsAllocated: 812, PIDsWrapped: true}}
	b := event.NewEncoder("h").AppendJSON(nil, &r)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := map[string]any{"type": "gap", "reason": "not_listening", "from": "2026-11-30T12:00:00.000000000Z",
		"to": "2026-11-30T12:01:00.000000000Z", "pids_allocated": float64(812), "pids_wrapped": true, "clean_stop": false, "host": "h"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v (line %s)", k, got[k], v, b)
		}
	}
}
