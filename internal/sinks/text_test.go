package sinks

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
