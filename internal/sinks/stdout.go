package sinks

import (
	"context"
	"io"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Stream writes JSON lines to an io.Writer such as os.Stdout. A failed
// write counts the lines it held as failed.
type Stream struct {
	w        io.Writer
	enc      *event.Encoder
	counters *Counters
	buf      []byte
	lines    int
	tc       event.TimeCache
}

// streamFlushBytes is how much a line sink buffers before it writes.
const streamFlushBytes = 64 << 10

// NewStream returns a sink writing to w.
func NewStream(w io.Writer, enc *event.Encoder, c *Counters) *Stream {
	return &Stream{w: w, enc: enc, counters: c, buf: make([]byte, 0, 2*streamFlushBytes)}
}

// Write buffers one line.
func (s *Stream) Write(r *event.Record) error {
	s.buf = s.enc.AppendJSONCached(s.buf, r, &s.tc)
	s.lines++
	if len(s.buf) >= streamFlushBytes {
		return s.Flush(context.Background())
	}
	return nil
}

// Flush writes the buffered lines.
func (s *Stream) Flush(context.Context) error {
	if s.lines == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	if err != nil {
		s.counters.Failed.Add(float64(s.lines))
	} else {
		s.counters.Sent.Add(float64(s.lines))
	}
	s.buf, s.lines = s.buf[:0], 0
	return nil
}

// Close flushes.
func (s *Stream) Close(ctx context.Context) error { return s.Flush(ctx) }
