package sinks

import "time"

// Message states in the in-flight table.
const (
	stUnsent = iota // waiting to be published (again)
	stSent          // published, waiting for its acknowledgement or confirmation
	stDone          // counted; left in the queue until passed
)

// held is one message the NATS sink holds until it has an outcome: the
// in-flight table's bookkeeping and the sink's payload P (the encoded message, sent
// again as is).
type held[P any] struct {
	P        P
	id       uint64 // unique among live messages (the JetStream reply token)
	state    uint8
	conn     uint64 // connection number of the latest publish
	pubSeq   uint64 // order of the latest publish
	attempts int
	due      time.Time // stUnsent: not before; stSent (JetStream): acknowledgement deadline
	size     int
}

// inflight is the NATS sink's in-flight table: every message from the
// moment the sink holds it until it is counted, in publish order. It is
// pure (no I/O, no clock, no locks: the sink serializes access) so that
// its rules can be tested alone:
//
//   - a message is finished (counted sent or failed) exactly once;
//   - confirm(conn, upto) finishes exactly the messages whose latest
//     publish went out on connection conn before publish number upto;
//   - live, sent and bytes always equal what the queue holds.
type inflight[P any] struct {
	q       []*held[P] // publish order; finished messages are skipped
	head    int
	live    int                 // messages not finished
	sent    int                 // messages in stSent
	bytes   int                 // size of live messages
	byID    map[uint64]*held[P] // nil unless indexed
	free    []*held[P]
	maxFree int
	nextID  uint64
	pubSeq  uint64 // publishes so far: the next publish's number
}

// newInflight returns an empty table that keeps up to maxFree finished
// messages for reuse and, when indexed, finds live messages by id.
func newInflight[P any](maxFree int, indexed bool) *inflight[P] {
	l := &inflight[P]{maxFree: maxFree}
	if indexed {
		l.byID = make(map[uint64]*held[P])
	}
	return l
}

// get returns a message to fill, with a new id; it is not held until hold.
func (l *inflight[P]) get() *held[P] {
	var h *held[P]
	if n := len(l.free); n > 0 {
		h = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		h = new(held[P])
	}
	l.nextID++
	h.id = l.nextID
	return h
}

// discard gives back a message from get that is not held.
func (l *inflight[P]) discard(h *held[P]) {
	if len(l.free) < l.maxFree {
		l.free = append(l.free, h)
	}
}

// hold appends h, of size bytes, as unsent.
func (l *inflight[P]) hold(h *held[P], size int) {
	h.state, h.attempts, h.due, h.size, h.conn, h.pubSeq = stUnsent, 0, time.Time{}, size, 0, 0
	l.q = append(l.q, h)
	if l.byID != nil {
		l.byID[h.id] = h
	}
	l.live++
	l.bytes += size
}

// lookup returns the live message with id, or nil (always nil unless
// indexed).
func (l *inflight[P]) lookup(id uint64) *held[P] { return l.byID[id] }

// published records that h went out on connection conn; due is its
// acknowledgement deadline (zero when confirmations are by round trip).
func (l *inflight[P]) published(h *held[P], conn uint64, due time.Time) {
	if h.state == stDone {
		return
	}
	if h.state != stSent {
		l.sent++
	}
	h.state, h.conn, h.pubSeq, h.due = stSent, conn, l.pubSeq, due
	h.attempts++
	l.pubSeq++
}

// retry makes h unsent again, to be published not before due.
func (l *inflight[P]) retry(h *held[P], due time.Time) {
	if h.state == stDone {
		return
	}
	if h.state == stSent {
		l.sent--
	}
	h.state, h.due = stUnsent, due
}

// finish retires h; it reports false when h was already finished, so that
// the caller counts each message once.
func (l *inflight[P]) finish(h *held[P]) bool {
	if h.state == stDone {
		return false
	}
	if h.state == stSent {
		l.sent--
	}
	h.state = stDone
	l.live--
	l.bytes -= h.size
	delete(l.byID, h.id)
	return true
}

// confirm finishes the messages whose latest publish went out on
// connection conn before publish number upto, and returns how many. A
// message published again after a failure sits at its old place in the
// queue, out of publish order: it waits for a later round.
func (l *inflight[P]) confirm(conn, upto uint64) int {
	n := 0
	for _, h := range l.q[l.head:] {
		if h.state != stSent || h.conn != conn {
			continue
		}
		if h.pubSeq >= upto {
			break
		}
		l.finish(h)
		n++
	}
	l.advance()
	return n
}

// pending returns the queue from its first live message: the caller may
// publish, retry or finish the messages, not reorder them.
func (l *inflight[P]) pending() []*held[P] { return l.q[l.head:] }

// finishAll finishes every live message and returns how many there were.
func (l *inflight[P]) finishAll() int {
	n := 0
	for _, h := range l.q[l.head:] {
		if l.finish(h) {
			n++
		}
	}
	l.advance()
	return n
}

// advance recycles finished messages at the head of the queue and
// compacts it when finished messages pile up behind a slow one.
func (l *inflight[P]) advance() {
	for l.head < len(l.q) && l.q[l.head].state == stDone {
		l.discard(l.q[l.head])
		l.q[l.head] = nil
		l.head++
	}
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
		return
	}
	if n := len(l.q) - l.head; n > 2*l.live+1024 || l.head > 4096 && l.head > n {
		kept := l.q[:0]
		for _, h := range l.q[l.head:] {
			if h.state == stDone {
				l.discard(h)
			} else {
				kept = append(kept, h)
			}
		}
		clear(l.q[len(kept):])
		l.q, l.head = kept, 0
	}
}
