package sinks

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cnbridged/cnbridged/internal/event"
)

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStreamConformance(t *testing.T) {
	conformance{
		open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
			var buf bytes.Buffer
			return NewStream(&buf, event.NewEncoder("h"), c), func() []map[string]any { return decodeLines(t, buf.Bytes()) }
		},
		broken: func(t *testing.T, c *Counters) Sink { return NewStream(failingWriter{}, event.NewEncoder("h"), c) },
	}.run(t)
}
