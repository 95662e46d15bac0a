// Package lru is a bounded map that evicts its least recently used entry.
// It is the one LRU list of the project: the sequence tracker and the
// process table both keep their entries in one.
//
// Entries live in a slice of slots linked into a recency list by index, so
// that once the map has filled, Put and Get allocate nothing. Every
// operation is O(1). A Map is not safe for concurrent use.
package lru

const none = -1

// Map maps keys to values, holding at most Max entries.
type Map[K comparable, V any] struct {
	max   int
	index map[K]int32
	slots []slot[K, V]
	head  int32 // most recently used, or none
	tail  int32 // least recently used, or none
	free  int32 // free slots, linked by next
}

type slot[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32 // toward head, toward tail
}

// New returns a map that holds at most max entries; max < 1 holds none.
func New[K comparable, V any](max int) *Map[K, V] {
	if max < 0 {
		max = 0
	}
	return &Map[K, V]{
		max:   max,
		index: make(map[K]int32, min(max, 4096)),
		head:  none,
		tail:  none,
		free:  none,
	}
}

// Len returns the number of entries.
func (m *Map[K, V]) Len() int { return len(m.index) }

// Get returns the value of k and marks it most recently used.
func (m *Map[K, V]) Get(k K) (V, bool) {
	i, ok := m.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	m.touch(i)
	return m.slots[i].val, true
}

// Peek returns the value of k without changing its recency.
func (m *Map[K, V]) Peek(k K) (V, bool) {
	i, ok := m.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	return m.slots[i].val, true
}

// Ref returns a pointer to the value of k, valid until the next Put or
// Remove, and marks it most recently used.
func (m *Map[K, V]) Ref(k K) (*V, bool) {
	i, ok := m.index[k]
	if !ok {
		return nil, false
	}
	m.touch(i)
	return &m.slots[i].val, true
}

// Put stores v under k and marks it most recently used. When the map is
// full and k is new, the least recently used entry is evicted first and
// returned with evicted set.
func (m *Map[K, V]) Put(k K, v V) (oldKey K, oldVal V, evicted bool) {
	if i, ok := m.index[k]; ok {
		m.slots[i].val = v
		m.touch(i)
		return oldKey, oldVal, false
	}
	if m.max == 0 {
		return k, v, true
	}
	var i int32
	switch {
	case len(m.index) >= m.max:
		i = m.tail
		m.unlink(i)
		oldKey, oldVal, evicted = m.slots[i].key, m.slots[i].val, true
		delete(m.index, oldKey)
	case m.free != none:
		i = m.free
		m.free = m.slots[i].next
	default:
		m.slots = append(m.slots, slot[K, V]{})
		i = int32(len(m.slots) - 1)
	}
	m.slots[i] = slot[K, V]{key: k, val: v, prev: none, next: none}
	m.pushFront(i)
	m.index[k] = i
	return oldKey, oldVal, evicted
}

// Oldest returns the least recently used entry without touching it.
func (m *Map[K, V]) Oldest() (K, V, bool) {
	if m.tail == none {
		var k K
		var v V
		return k, v, false
	}
	s := &m.slots[m.tail]
	return s.key, s.val, true
}

// Remove deletes k and reports whether it was there.
func (m *Map[K, V]) Remove(k K) bool {
	i, ok := m.index[k]
	if !ok {
		return false
	}
	m.unlink(i)
	delete(m.index, k)
	m.slots[i] = slot[K, V]{prev: none, next: m.free} // drop what the value holds
	m.free = i
	return true
}

// All calls f for every entry, most recently used first, until f returns
// false. f must not change the map.
func (m *Map[K, V]) All(f func(K, V) bool) {
	for i := m.head; i != none; i = m.slots[i].next {
		if !f(m.slots[i].key, m.slots[i].val) {
			return
		}
	}
}

func (m *Map[K, V]) touch(i int32) {
	if m.head == i {
		return
	}
	m.unlink(i)
	m.pushFront(i)
}

func (m *Map[K, V]) pushFront(i int32) {
	s := &m.slots[i]
	s.prev, s.next = none, m.head
	if m.head != none {
		m.slots[m.head].prev = i
	}
	m.head = i
	if m.tail == none {
		m.tail = i
	}
}

func (m *Map[K, V]) unlink(i int32) {
	s := &m.slots[i]
	if s.prev != none {
		m.slots[s.prev].next = s.next
	} else {
		m.head = s.next
	}
	if s.next != none {
		m.slots[s.next].prev = s.prev
	} else {
		m.tail = s.prev
	}
	s.prev, s.next = none, none
}
