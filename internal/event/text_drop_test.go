package event

import (
	"testing"
	"time"
)

func TestAppendDropped(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 2, 345e6, time.UTC)
	for _, tt := range []struct {
		f    TextFormatter
		by   []Dropped
		want string
	}{
		{TextFormatter{}, []Dropped{{"queue_full", 20782}, {"shutdown", 0}},
			"10:00:02.345 DROPPED  20782 rows not shown (queue_full 20782): the output is slower than the events; cnbridged_sink_dropped_total counts them\n"},
		{TextFormatter{Host: true}, []Dropped{{"queue_full", 1}},
			"10:00:02.345 -        DROPPED  1 row not shown (queue_full 1): the output is slower than the events; cnbridged_sink_dropped_total counts them\n"},
		{TextFormatter{Color: true}, []Dropped{{"queue_full", 2}, {"shutdown", 3}},
			"10:00:02.345 \x1b[1;31mDROPPED  5 rows not shown (queue_full 2, shutdown 3): the output is slower than the events; cnbridged_sink_dropped_total counts them\x1b[0m\n"},
		{TextFormatter{}, []Dropped{{"queue_full", 0}}, ""},
	} {
		if got := string(tt.f.AppendDropped(nil, at, tt.by)); got != tt.want {
			t.Errorf("%+v %v:\ngot  %q\nwant %q", tt.f, tt.by, got, tt.want)
		}
	}
}
