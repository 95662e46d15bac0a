package sinks

import (
	"io"

	"github.com/cnbridged/cnbridged/internal/event"
)

// TextStream writes records as aligned text columns for people (the stdout
// sink's format: text), with a header line before the first record. Each
// record is encoded as its JSON line first and rendered from that, so the
// text shows exactly what the JSON contract carries. A failed write counts
// the lines it held as failed.
type TextStream struct {
	lineBuffer
	enc    *event.Encoder
	text   *event.TextFormatter
	line   []byte
	header bool
	tc     event.TimeCache
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
		s.counters.Fail(FailWrite, 1)
		return nil
	}
	s.buf = out
	s.added()
	return nil
}
