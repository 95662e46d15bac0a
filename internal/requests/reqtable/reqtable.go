// Package reqtable matches kernel connector replies to pending requests.
//
// The connector protocol (Documentation/driver-api/connector.rst, "Protocol
// description") gives every message a seq and an ack (struct cn_msg). A
// sender uses a locally unique seq and a random ack; a reply carries the same
// seq and ack+1. A message whose seq is not one we wait for, or whose seq is
// but whose ack is not the request's ack+1, is a new message.
//
// A Table holds the pending requests, bounded in number and each with a
// deadline. It is pure: it does no I/O, starts no goroutines and never reads
// the clock; the caller passes the current time in. It is not safe for
// concurrent use; one goroutine owns it.
package reqtable

import (
	"container/heap"
	"errors"
	"time"
)

// ID is a connector id (struct cb_id).
type ID struct {
	Idx uint32 // cb_id.idx
	Val uint32 // cb_id.val
}

// Key identifies a request: its connector id and the request's own seq and
// ack (cn_msg.seq, cn_msg.ack). Its reply carries the same ID and Seq and an
// ack of Ack+1.
type Key struct {
	ID  ID
	Seq uint32
	Ack uint32
}

// ReplyAck returns the ack a reply to k carries: k.Ack+1, wrapping from
// 0xffffffff to 0.
func (k Key) ReplyAck() uint32 { return k.Ack + 1 }

// Errors returned by Add.
var (
	// ErrFull means the table already holds its maximum number of pending
	// requests; the caller should refuse the request.
	ErrFull = errors.New("reqtable: too many pending requests")
	// ErrExists means a request with the same ID and Seq is already
	// pending. Seqs are locally unique, so a second request reusing one is
	// a caller bug; SeqSource never produces one.
	ErrExists = errors.New("reqtable: request already pending")
)

// Status is what Lookup found for a received message.
type Status uint8

const (
	// NewMessage: no pending request has this id and seq, or one has but the ack
	// is not its ack+1. Per the protocol the message is a new message, not
	// a reply. A duplicate of an already matched reply is also NewMessage.
	NewMessage Status = iota
	// Matched: the message is the reply to a pending request, which has
	// been removed from the table.
	Matched
	// Late: the message is the reply to a pending request whose deadline
	// has passed. The request stays in the table for Expire to report, so
	// the caller answers it with a timeout exactly once.
	Late
)

func (s Status) String() string {
	switch s {
	case NewMessage:
		return "new message"
	case Matched:
		return "matched"
	case Late:
		return "late"
	default:
		return "unknown"
	}
}

// Expired is a request removed by Expire because its deadline passed.
type Expired[T any] struct {
	Key   Key
	Value T
}

// slot is what a reply can be looked up by: the ack is checked afterwards.
type slot struct {
	id  ID
	seq uint32
}

type entry[T any] struct {
	key      Key
	value    T
	deadline time.Time
	order    uint64 // Add order, so equal deadlines expire first-in first-out
	index    int    // position in the heap
}

// Table is a bounded set of pending requests, each with a caller's handle
// of type T (for example the NATS inbox to answer) and a deadline.
//
// Lookup by (ID, Seq) is a map access; deadlines are kept in a min-heap, so
// Add, Match (on a hit) and each expired entry cost O(log n).
type Table[T any] struct {
	max     int
	byKey   map[slot]*entry[T]
	byTime  deadlineHeap[T]
	counter uint64
}

// New returns an empty table that holds at most max pending requests.
// It panics if max is less than 1.
func New[T any](max int) *Table[T] {
	if max < 1 {
		panic("reqtable: New called with max < 1")
	}
	return &Table[T]{
		max:   max,
		byKey: make(map[slot]*entry[T]),
	}
}

// Add registers a pending request k with handle v, which times out at
// deadline. It returns ErrExists if a request with the same ID and Seq is
// pending (whatever its ack), and ErrFull if the table is full; in both
// cases the table is unchanged.
//
// Add before sending the request, so that a fast reply finds it; if sending
// then fails, Remove it.
func (t *Table[T]) Add(k Key, v T, deadline time.Time) error {
	s := slot{k.ID, k.Seq}
	if _, ok := t.byKey[s]; ok {
		return ErrExists
	}
	if len(t.byKey) >= t.max {
		return ErrFull
	}
	e := &entry[T]{key: k, value: v, deadline: deadline, order: t.counter}
	t.counter++
	t.byKey[s] = e
	heap.Push(&t.byTime, e)
	return nil
}

// Match reports whether a received message with this id, seq and ack is the
// reply to a pending request and, if it is, removes the request and returns
// its handle. It is Lookup without the reason; see Lookup.
func (t *Table[T]) Match(id ID, seq, ack uint32, now time.Time) (v T, ok bool) {
	v, st := t.Lookup(id, seq, ack, now)
	return v, st == Matched
}

// Lookup classifies a received message. It is Matched, and the request is
// removed and its handle returned, when a request with this id and seq is
// pending, ack is the request's ack+1 (wrapping) and now is before the
// request's deadline. It is Late, and the table is unchanged, when all but
// the deadline hold: the request is left for Expire. Otherwise the message
// is NewMessage and the table is unchanged.
func (t *Table[T]) Lookup(id ID, seq, ack uint32, now time.Time) (v T, st Status) {
	e, ok := t.byKey[slot{id, seq}]
	if !ok || ack != e.key.ReplyAck() {
		return v, NewMessage
	}
	if !now.Before(e.deadline) {
		return v, Late
	}
	t.remove(e)
	return e.value, Matched
}

// Remove removes the pending request k, which must match in ID, Seq and Ack,
// and returns its handle. It is for a request that could not be sent.
func (t *Table[T]) Remove(k Key) (v T, ok bool) {
	e, ok := t.byKey[slot{k.ID, k.Seq}]
	if !ok || e.key != k {
		return v, false
	}
	t.remove(e)
	return e.value, true
}

// Pending reports whether a request with this id and seq is pending.
func (t *Table[T]) Pending(id ID, seq uint32) bool {
	_, ok := t.byKey[slot{id, seq}]
	return ok
}

// Expire removes every request whose deadline is at or before now and
// appends them to dst, earliest deadline first (requests with equal
// deadlines in the order they were added). It returns the extended slice.
func (t *Table[T]) Expire(now time.Time, dst []Expired[T]) []Expired[T] {
	for len(t.byTime) > 0 {
		e := t.byTime[0]
		if now.Before(e.deadline) {
			break
		}
		t.remove(e)
		dst = append(dst, Expired[T]{Key: e.key, Value: e.value})
	}
	return dst
}

// Len returns the number of pending requests.
func (t *Table[T]) Len() int { return len(t.byKey) }

// NextDeadline returns the earliest deadline of the pending requests, for
// the caller's timer; ok is false if none is pending.
func (t *Table[T]) NextDeadline() (deadline time.Time, ok bool) {
	if len(t.byTime) == 0 {
		return time.Time{}, false
	}
	return t.byTime[0].deadline, true
}

func (t *Table[T]) remove(e *entry[T]) {
	delete(t.byKey, slot{e.key.ID, e.key.Seq})
	heap.Remove(&t.byTime, e.index)
}

// deadlineHeap is a container/heap min-heap of entries by deadline, then Add
// order.
type deadlineHeap[T any] []*entry[T]

func (h deadlineHeap[T]) Len() int { return len(h) }

func (h deadlineHeap[T]) Less(i, j int) bool {
	if c := h[i].deadline.Compare(h[j].deadline); c != 0 {
		return c < 0
	}
	return h[i].order < h[j].order
}

func (h deadlineHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *deadlineHeap[T]) Push(x any) {
	e := x.(*entry[T])
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *deadlineHeap[T]) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil // drop the reference so the handle can be collected
	e.index = -1
	*h = old[:n]
	return e
}
