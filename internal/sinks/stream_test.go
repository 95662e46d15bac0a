package sinks

import (
	"bytes"
	"testing"

	"github.com/cnbridged/cnbridged/internal/event"
)

func TestStreamConformance(t *testing.T) {
	conformance{open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
		var buf bytes.Buffer
		return NewStream(&buf, event.NewEncoder("h"), c), func() []map[string]any { return decodeLines(t, buf.Bytes()) }
	}}.run(t)
}
