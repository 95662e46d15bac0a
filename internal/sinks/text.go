package sinks

import (
	"context"
	"io"
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
)

// TextStream writes records as aligned text columns for people (the stdout
// sink's format: text), with a header line before the first record. Each
// record is encoded as its JSON line first and rendered from that, so the
// text shows exactly what the JSON contract carries. A failed write counts
// the lines it held as failed.
//
// Records the sink's queue drops (queue_full: the terminal is slower than
// the events) never reach it; it says how many in a DROPPED line when it
// flushes — when its queue has run empty, and at least every flush
// interval while it is behind — after the rows queued before them, as
// loss gets LOSS lines. That line is not a record: it is counted neither
// sent nor failed.
type TextStream struct {
	lineBuffer
	enc    *event.Encoder
	text   *event.TextFormatter
	line   []byte
	header bool
	tc     event.TimeCache
	shown  [len(dropReasons)]uint64 // drops already told, by reason
}

// NewTextStream returns a sink writing text lines to w.
func NewTextStream(w io.Writer, enc *event.Encoder, text *event.TextFormatter, c *Counters) *TextStream {
	return &TextStream{lineBuffer: newLineBuffer(w, c), enc: enc, text: text}
}

// Write buffers one line.
func (s *TextStream) Write(r *event.Record) error {
	if !s.header {
		s.buf = append(s.buf, s.text.TextHeader()...)
		s.header = true
	}
	s.line = s.enc.AppendJSONCached(s.line[:0], r, &s.tc)
	out, err := s.text.AppendText(s.buf, s.line)
	if err != nil {
		// The encoder's own output always parses; count it rather than
		// stop the sink if that ever changes.
		s.counters.Failed.Inc()
		return nil
	}
	s.buf = out
	s.added()
	return nil
}

// tellDropped appends a DROPPED line for the records dropped since the
// last one.
func (s *TextStream) tellDropped() {
	now := s.counters.DroppedBy()
	if now == s.shown {
		return
	}
	var by []event.Dropped
	for i, n := range now {
		by = append(by, event.Dropped{Reason: dropReasons[i], N: n - s.shown[i]})
	}
	s.shown = now
	s.buf = s.text.AppendDropped(s.buf, time.Now(), by)
}

// Flush tells what was dropped since the last line, then writes.
func (s *TextStream) Flush(ctx context.Context) error {
	s.tellDropped()
	return s.lineBuffer.Flush(ctx)
}

// Close tells what was dropped, flushes.
func (s *TextStream) Close(ctx context.Context) error { return s.Flush(ctx) }
