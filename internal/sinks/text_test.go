package sinks

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/event"
)

var _ Sink = (*TextStream)(nil)

var textSeqRE = regexp.MustCompile(` seq (\d+) `)

// TestTextStreamConformance runs the shared sink contract on the text
// format, reading the seq back from each rendered row.
func TestTextStreamConformance(t *testing.T) {
	conformance{open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
		var buf bytes.Buffer
		s := NewTextStream(&buf, event.NewEncoder("h"), &event.TextFormatter{}, c)
		return s, func() []map[string]any {
			text := buf.String()
			if text == "" {
				return nil
			}
			lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "TIME ") {
				t.Fatalf("first line %q is not the header", lines[0])
			}
			var out []map[string]any
			for _, l := range lines[1:] {
				m := textSeqRE.FindStringSubmatch(l)
				if m == nil {
					out = append(out, map[string]any{"row": l}) // a marker or a life
					continue
				}
				seq, _ := strconv.ParseFloat(m[1], 64)
				out = append(out, map[string]any{"seq": seq})
			}
			return out
		}
	}, broken: func(t *testing.T, c *Counters) Sink {
		return NewTextStream(failingWriter{}, event.NewEncoder("h"), &event.TextFormatter{}, c)
	}}.run(t)
}

// TestTextStreamTellsDrops: records the queue dropped because the terminal
// was too slow are said in the stream, with their count, after the rows
// queued before them; the line is counted neither sent nor failed.
func TestTextStreamTellsDrops(t *testing.T) {
	var buf bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	c := m.Counters("r") // as the daemon does: the sink's and its runner's
	text := NewTextStream(&buf, event.NewEncoder("h"), &event.TextFormatter{}, c)
	g := &runnerRig{t: t, r: NewRunner(RunnerConfig{Name: "r", QueueSize: 4, QueueMaxBytes: 1 << 20}, text, m, zaptest.NewLogger(t)), c: c, pool: event.NewPool()}
	g.offer(g.batch(3))
	g.offer(g.batch(2)) // no room: 2 dropped, queue_full
	g.offer(g.batch(1)) // room for one more
	done := g.run(context.Background())
	g.r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want the header, 4 rows and a DROPPED line:\n%s", len(lines), buf.String())
	}
	last := lines[5]
	if !strings.Contains(last, "DROPPED  2 rows not shown (queue_full 2): the output is slower than the events") {
		t.Errorf("last line %q does not tell the 2 rows dropped", last)
	}
	if got := testutil.ToFloat64(c.Sent); got != 4 {
		t.Errorf("sent %v, want 4 (the DROPPED line is no record)", got)
	}
	// Nothing more dropped: no second line.
	buf.Reset()
	text.Flush(context.Background())
	if buf.Len() != 0 {
		t.Errorf("a flush with no new drops wrote %q", buf.String())
	}
}
