package sinks

import (
	"sync"

	"github.com/cnbridged/cnbridged/internal/event"
)

// queue is a bounded FIFO of batches between the kernel reader and one
// sink, bounded both in records and in bytes.
type queue struct {
	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	items    []queued // ring
	head, n  int
	records  int
	bytes    int
	maxRecs  int
	maxBytes int
	closed   bool
	blocked  int // pushers waiting for room
}

type queued struct {
	b     *event.Batch
	count int // records in b for this sink
	bytes int
}

func newQueue(maxRecs, maxBytes int) *queue {
	q := &queue{maxRecs: maxRecs, maxBytes: maxBytes, items: make([]queued, 64)}
	q.notEmpty.L = &q.mu
	q.notFull.L = &q.mu
	return q
}

// pushResult is what push did with an item.
type pushResult int

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// push appends it. When the queue has no room it returns pushFull at once,
// or with wait, blocks until there is room or the queue is closed
// (pushClosed).
func (q *queue) push(it queued, wait bool) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && !q.fits(it) {
		if !wait {
			return pushFull
		}
		q.blocked++
		q.notFull.Wait()
		q.blocked--
	}
	if q.closed {
		return pushClosed
	}
	if q.n == len(q.items) {
		grown := make([]queued, 2*len(q.items))
		for i := 0; i < q.n; i++ {
			grown[i] = q.items[(q.head+i)%len(q.items)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.n)%len(q.items)] = it
	q.n++
	q.records += it.count
	q.bytes += it.bytes
	q.notEmpty.Signal()
	return pushed
}

// fits reports whether it can be added. An empty queue takes any one batch,
// so that a batch larger than the byte bound still moves.
func (q *queue) fits(it queued) bool {
	if q.n == 0 {
		return true
	}
	return q.records+it.count <= q.maxRecs && q.bytes+it.bytes <= q.maxBytes
}

// pop removes the oldest batch, waiting for one; ok is false once the
// queue is closed and empty.
func (q *queue) pop() (it queued, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return queued{}, false
		}
		q.notEmpty.Wait()
	}
	it = q.items[q.head]
	q.items[q.head] = queued{}
	q.head = (q.head + 1) % len(q.items)
	q.n--
	q.records -= it.count
	q.bytes -= it.bytes
	q.notFull.Broadcast()
	return it, true
}

// tryPop is pop without waiting.
func (q *queue) tryPop() (queued, bool) {
	q.mu.Lock()
	empty := q.n == 0
	q.mu.Unlock()
	if empty {
		return queued{}, false
	}
	return q.pop()
}

// close wakes every waiter; pushes fail from now on and pop drains what is
// left.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
	q.mu.Unlock()
}

// waiters returns the pushers waiting for room.
func (q *queue) waiters() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.blocked
}

func (q *queue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.records
}
