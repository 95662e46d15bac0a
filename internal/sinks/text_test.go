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

// textMarker returns the type of the record a marker row shows, or "".
func textMarker(row string) string {
	f := strings.Fields(row)
	if len(f) < 2 {
		return ""
	}
	return map[string]string{"LOSS": "loss", "GAP": "gap", "exit?": "exit_lost", "SUPPRESSED": "suppressed", "life": "life"}[f[1]]
}

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
				if typ := textMarker(l); typ != "" {
					out = append(out, map[string]any{"type": typ})
					continue
				}
				m := textSeqRE.FindStringSubmatch(l)
				if m == nil { // a process event: its row shows no seq
					out = append(out, map[string]any{})
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
