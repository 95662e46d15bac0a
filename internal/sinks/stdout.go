package sinks

import (
	"context"
	"io"

	"github.com/cnbridged/cnbridged/internal/event"
)

// streamFlushBytes is how much a line sink buffers before it writes.
const streamFlushBytes = 64 << 10

// lineBuffer holds whole lines for an io.Writer and writes them in one
// call. A failed write counts the lines it held as failed; either way they
// are gone from the buffer.
type lineBuffer struct {
	w        io.Writer
	counters *Counters
	buf      []byte
	lines    int
}

func newLineBuffer(w io.Writer, c *Counters) lineBuffer {
	return lineBuffer{w: w, counters: c, buf: make([]byte, 0, 2*streamFlushBytes)}
}

// added counts one more line appended to buf and writes them all once the
// buffer is full.
func (b *lineBuffer) added() {
	b.lines++
	if len(b.buf) >= streamFlushBytes {
		b.flush()
	}
}

func (b *lineBuffer) flush() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil {
		b.counters.Failed.Add(float64(b.lines))
	} else {
		b.counters.Sent.Add(float64(b.lines))
	}
	b.buf, b.lines = b.buf[:0], 0
}

// Flush writes the buffered lines.
func (b *lineBuffer) Flush(context.Context) error {
	b.flush()
	return nil
}

// Close flushes.
func (b *lineBuffer) Close(ctx context.Context) error { return b.Flush(ctx) }

// Stream writes JSON lines to an io.Writer such as os.Stdout. A failed
// write counts the lines it held as failed.
type Stream struct {
	lineBuffer
	body *bodyEncoder
}

// NewStream returns a sink writing native lines to w.
func NewStream(w io.Writer, enc *event.Encoder, c *Counters) *Stream {
	return NewStreamBody(w, enc, Body{}, c)
}

// NewStreamBody returns a sink writing to w the objects b says.
func NewStreamBody(w io.Writer, enc *event.Encoder, b Body, c *Counters) *Stream {
	return &Stream{lineBuffer: newLineBuffer(w, c), body: newBodyEncoder(enc, b)}
}

// Write buffers one line.
func (s *Stream) Write(r *event.Record) error {
	s.buf = s.body.appendLine(s.buf, r)
	s.added()
	return nil
}
