// Package seqtrack tracks sequence-number gaps: its Tracker is fed the
// (stream, seq) of every received connector message and says, per message,
// whether it was in order, followed a gap (and how many messages that gap
// lost), was a duplicate, arrived late, or showed that the sender restarted.
//
// The package is pure: no I/O, no logging, no metrics, no package state. The
// caller turns Results into counters.
//
// # Streams
//
// A stream is named by a Key: the sender's netlink port id and the connector
// id (idx.val). The process connector (1.1) numbers its events with a per-CPU
// counter, so for it the stream also includes the CPU that numbered the event
// (proc_event.cpu); grouped by CPU its seqs are contiguous, ungrouped they
// jump back all the time. Callers set CPU to 0 for every other id.
//
// # Arithmetic and classification
//
// All seq arithmetic is modulo 2^32: after 4294967295 comes 0. For a stream
// whose highest seq seen so far is last, the next expected seq is last+1 and
// an arriving seq is placed with the signed 32-bit distance
// d = int32(seq - (last+1)):
//
//   - d == 0: InOrder.
//   - d > 0: Gap. The d seqs last+1 .. seq-1 are missing (FromSeq..ToSeq,
//     inclusive, u32 arithmetic). A forward jump of up to 2^31-1 is therefore
//     a gap, never a restart: the tracker cannot tell a sender that restarted
//     at a number just ahead of where it was from one whose messages were
//     lost, and it counts the loss.
//   - d < 0: the seq is behind. Its distance back from last is b = last-seq
//     (0 for a repeat of last). If b <= DuplicateHorizon (1024, which is at
//     least the reorder window) the message is Duplicate, or Late when it
//     fills a hole that is still inside the reorder window. If it is further
//     back, the sender restarted (or this daemon lost a great many messages
//     in a way it cannot measure): Reset, the seq becomes the new base and no
//     loss is invented. A jump "forward" by 2^31 or more is also behind by
//     this rule and hence a Reset.
//
// The first message of a stream (and the first after the stream was
// forgotten or evicted) is First: it sets the base and reports no loss, so
// nothing is invented at start-up.
//
// # Reorder window
//
// Kernel streams are ordered (per CPU), so the default window is 0 and every
// gap is loss the moment it is seen: Gap reports Lost = d. With a window W
// (1..MaxReorderWindow), a missing seq is declared lost only once the stream's
// highest seq has moved W past it (its distance back from last is > W); until
// then it may arrive and is reported Late, not lost. Lost in a Result is the
// number of messages declared lost by that observation, so with W > 0 a Gap
// may carry Lost 0 (its holes are still pending) and an InOrder or Gap may
// carry Lost > 0 for older holes that just left the window. Every missing seq
// is thus either Late or counted in Lost exactly once, never both and never
// twice. A Reset declares the holes still pending in the old window lost (the
// restarted sender will never send them), so a Reset's Lost may be > 0 when
// W > 0; with W = 0 a Reset never reports loss.
//
// A message behind last that is beyond the window but within the duplicate
// horizon is reported Duplicate: the tracker only remembers holes inside the
// window, so it cannot tell a true duplicate from a lost message that turned
// up after it was already counted. Its loss is not taken back.
//
// # Memory
//
// Each stream costs a few dozen bytes. At most MaxStreams streams are kept;
// when a new stream would exceed that, the least recently observed stream is
// forgotten and Evictions goes up. A forgotten or evicted stream's next
// message is First. Holes still pending in its window (at most W) are dropped
// without being counted.
//
// # Concurrency and cost
//
// A Tracker is not safe for concurrent use: one goroutine owns it (normally
// the one that reads the socket). Observe is O(1) and does not allocate for a
// stream that already exists.
package seqtrack

import (
	"fmt"
	"math/bits"

	"github.com/cnbridged/cnbridged/internal/lru"
	"strconv"
)

const (
	// MaxReorderWindow is the largest Options.ReorderWindow accepted.
	MaxReorderWindow = 64
	// DefaultMaxStreams is the MaxStreams used when Options.MaxStreams is 0.
	DefaultMaxStreams = 65536
	// DuplicateHorizon is how far behind the highest seq seen a message may
	// be and still count as Duplicate or Late rather than as a sender
	// restart (Reset). It is max(ReorderWindow, 1024), and ReorderWindow is
	// at most 64.
	DuplicateHorizon = 1024
)

// Key names one sequence stream: per sender port id and connector id; for
// the process connector (idx 1, val 1) also per CPU (the kernel numbers
// process events with a per-CPU counter); callers set CPU=0 for other ids.
type Key struct{ Sender, Idx, Val, CPU uint32 }

// Kind classifies one observed message.
type Kind uint8

const (
	// First is the first message of a stream: it sets the base.
	First Kind = iota
	// InOrder is the expected seq, last+1.
	InOrder
	// Gap is a seq ahead of the expected one; the skipped seqs are missing.
	Gap
	// Duplicate is a seq at or behind the highest seen that is not a
	// pending hole (see the package doc).
	Duplicate
	// Reset is a seq so far behind that the sender must have restarted; it
	// becomes the new base.
	Reset
	// Late is a missing seq that arrived within the reorder window; it is
	// not counted as lost.
	Late
)

var kindNames = [...]string{
	First:     "first",
	InOrder:   "in-order",
	Gap:       "gap",
	Duplicate: "duplicate",
	Reset:     "reset",
	Late:      "late",
}

// String returns the kind's lower-case name, e.g. "in-order".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Result is what Observe learned from one message.
type Result struct {
	Kind Kind
	// Lost is the number of messages declared lost by this observation. For
	// Gap with no reorder window it is the size of the gap. With a window it
	// counts the holes that just left the window, so it may be 0 for a Gap
	// and > 0 for InOrder, Gap or Reset.
	Lost uint32
	// FromSeq and ToSeq are, for Gap, the first and last missing seq
	// (inclusive, u32 arithmetic). They are 0 for other kinds.
	FromSeq, ToSeq uint32
}

// Options configures a Tracker. The zero value is valid.
type Options struct {
	// ReorderWindow: how many seqs behind the highest seen a late message
	// may arrive and still be accepted (0..64, default 0 = kernel streams,
	// which are ordered per CPU). With a window W, a missing seq is declared
	// lost only once the stream has moved W past it, so a late arrival
	// within W is not counted as loss.
	ReorderWindow int
	// MaxStreams bounds memory (default 65536); when exceeded, the least
	// recently used stream is forgotten (its next message then counts as
	// First). Evictions counted.
	MaxStreams int
}

// Validate reports whether New accepts o.
func (o Options) Validate() error {
	if o.ReorderWindow < 0 || o.ReorderWindow > MaxReorderWindow {
		return fmt.Errorf("seqtrack: reorder window %d out of range 0..%d", o.ReorderWindow, MaxReorderWindow)
	}
	if o.MaxStreams < 0 || int64(o.MaxStreams) > maxSlots {
		return fmt.Errorf("seqtrack: max streams %d out of range 0..%d", o.MaxStreams, maxSlots)
	}
	return nil
}

// maxSlots keeps the LRU's slot indexes within int32.
const maxSlots = 1<<31 - 1

// stream is one stream's state.
type stream struct {
	// last is the highest seq seen (in the signed-distance sense).
	last uint32
	// holes has bit i set when seq last-1-i is missing and still inside the
	// reorder window (i < window). Always 0 when the window is 0.
	holes uint64
}

// Tracker tracks the sequence numbers of many streams. It is not safe for
// concurrent use; one goroutine owns it.
type Tracker struct {
	window     uint32
	windowMask uint64

	// streams holds at most MaxStreams streams, least recently observed
	// evicted first.
	streams *lru.Map[Key, stream]

	evictions uint64
}

// New returns an empty Tracker. It panics if o is invalid (see
// Options.Validate); callers holding user configuration validate it first.
func New(o Options) *Tracker {
	if err := o.Validate(); err != nil {
		panic(err)
	}
	maxStreams := o.MaxStreams
	if maxStreams == 0 {
		maxStreams = DefaultMaxStreams
	}
	w := uint32(o.ReorderWindow)
	var mask uint64
	if w > 0 {
		mask = ^uint64(0) >> (64 - w)
	}
	return &Tracker{window: w, windowMask: mask, streams: lru.New[Key, stream](maxStreams)}
}

// Observe records message seq of stream k and classifies it.
func (t *Tracker) Observe(k Key, seq uint32) Result {
	s, ok := t.streams.Ref(k) // marks it most recently observed
	if !ok {
		if _, _, evicted := t.streams.Put(k, stream{last: seq}); evicted {
			t.evictions++
		}
		return Result{Kind: First}
	}

	expected := s.last + 1
	if d := int32(seq - expected); d >= 0 {
		return t.advance(s, seq, uint32(d))
	}

	back := s.last - seq // 0 for a repeat of last; < 2^31 here
	if back > DuplicateHorizon {
		lost := uint32(bits.OnesCount64(s.holes))
		s.last = seq
		s.holes = 0
		return Result{Kind: Reset, Lost: lost}
	}
	if back >= 1 && back <= t.window {
		bit := uint64(1) << (back - 1)
		if s.holes&bit != 0 {
			s.holes &^= bit
			return Result{Kind: Late}
		}
	}
	return Result{Kind: Duplicate}
}

// advance moves stream s forward to seq, which is d seqs past the expected
// one (d < 2^31).
func (t *Tracker) advance(s *stream, seq, d uint32) Result {
	r := Result{Kind: InOrder}
	if d > 0 {
		r = Result{Kind: Gap, FromSeq: s.last + 1, ToSeq: seq - 1}
	}
	if t.window == 0 {
		r.Lost = d
		s.last = seq
		return r
	}

	// The hole at bit i (seq last-1-i) moves to bit i+n, n = d+1; holes
	// that land at bit >= window have left the window and are lost. All
	// holes are at bits < window <= 64, so this is holes >> (window-n).
	var lost uint32
	n := d + 1
	if n >= t.window {
		lost = uint32(bits.OnesCount64(s.holes))
		s.holes = 0
	} else {
		lost = uint32(bits.OnesCount64(s.holes >> (t.window - n)))
		s.holes = (s.holes << n) & t.windowMask
	}
	// The new holes last+1 .. seq-1 are at bits d-1 .. 0; those that would
	// be at bit >= window are lost at once.
	if d >= t.window {
		lost += d - t.window
		s.holes |= t.windowMask
	} else {
		s.holes |= uint64(1)<<d - 1
	}
	s.last = seq
	r.Lost = lost
	return r
}

// Forget drops stream k (e.g. its sender is gone). Its next message is First.
// Holes pending in its reorder window are dropped uncounted.
func (t *Tracker) Forget(k Key) { t.streams.Remove(k) }

// Streams returns the number of streams currently tracked.
func (t *Tracker) Streams() int { return t.streams.Len() }

// Evictions returns how many streams were forgotten to stay within
// MaxStreams.
func (t *Tracker) Evictions() uint64 { return t.evictions }
