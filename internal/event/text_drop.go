package event

import (
	"fmt"
	"strings"
	"time"
)

// Dropped is a count of records a sink dropped for one reason.
type Dropped struct {
	Reason string // queue_full, shutdown, …
	N      uint64
}

// AppendDropped appends a marker line, stamped t, saying that records were
// dropped before they could be shown: a sink writing text to a terminal
// slower than the events (its queue full) says so in the stream, as loss
// is said with LOSS lines. by lists the counts by reason.
func (f *TextFormatter) AppendDropped(dst []byte, t time.Time, by []Dropped) []byte {
	var total uint64
	var parts []string
	for _, d := range by {
		if d.N == 0 {
			continue
		}
		total += d.N
		parts = append(parts, fmt.Sprintf("%s %d", d.Reason, d.N))
	}
	if total == 0 {
		return dst
	}
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	ts := string(f.host(pad(nil, t.In(loc).Format("15:04:05.000"), wTime), "-"))
	rows := "rows"
	if total == 1 {
		rows = "row"
	}
	return f.marker(dst, ts, "DROPPED", ansiBoldRd, fmt.Sprintf("%d %s not shown (%s): the output is slower than the events; cnbridged_sink_dropped_total counts them",
		total, rows, strings.Join(parts, ", ")))
}
