package procinfo

// Cache maps pids to Info and holds at most a fixed number of them, evicting
// the least recently used (by Put or Get) when full. Every operation is O(1)
// and, once the cache has filled, allocates nothing.
//
// A Cache is not safe for concurrent use: it belongs to the one goroutine
// that enriches events, like the Reader that fills it.
type Cache struct {
	max     int
	index   map[uint32]int32 // pid → slot in entries
	entries []entry          // slots, grown up to max and then reused
	head    int32            // most recently used slot, or nilSlot
	tail    int32            // least recently used slot, or nilSlot
	free    int32            // first free slot (chained by next), or nilSlot
}

type entry struct {
	pid        uint32
	prev, next int32 // toward head, toward tail; nilSlot at the ends
	info       Info
}

const nilSlot = -1

// NewCache returns a cache that holds at most max entries. A max of zero or
// less makes a cache that holds nothing: Put does nothing and Get misses.
func NewCache(max int) *Cache {
	if max < 0 {
		max = 0
	}
	return &Cache{
		max:   max,
		index: make(map[uint32]int32, min(max, 4096)),
		head:  nilSlot,
		tail:  nilSlot,
		free:  nilSlot,
	}
}

// Len returns the number of entries in the cache.
func (c *Cache) Len() int { return len(c.index) }

// Get returns the Info stored for pid and marks it most recently used.
func (c *Cache) Get(pid uint32) (Info, bool) {
	s, ok := c.index[pid]
	if !ok {
		return Info{}, false
	}
	c.moveToFront(s)
	return c.entries[s].info, true
}

// Put stores info for pid, replacing what was there, and marks it most
// recently used. When the cache is full it first evicts the least recently
// used entry.
func (c *Cache) Put(pid uint32, info Info) {
	if s, ok := c.index[pid]; ok {
		c.entries[s].info = info
		c.moveToFront(s)
		return
	}
	if c.max == 0 {
		return
	}
	var s int32
	switch {
	case len(c.index) >= c.max:
		s = c.tail
		c.unlink(s)
		delete(c.index, c.entries[s].pid)
	case c.free != nilSlot:
		s = c.free
		c.free = c.entries[s].next
	default:
		c.entries = append(c.entries, entry{})
		s = int32(len(c.entries) - 1)
	}
	c.entries[s] = entry{pid: pid, prev: nilSlot, next: nilSlot, info: info}
	c.pushFront(s)
	c.index[pid] = s
}

// Forget removes pid from the cache, typically when the process exits.
func (c *Cache) Forget(pid uint32) {
	s, ok := c.index[pid]
	if !ok {
		return
	}
	c.unlink(s)
	delete(c.index, pid)
	// Drop the Info so that its strings can be collected.
	c.entries[s] = entry{prev: nilSlot, next: c.free}
	c.free = s
}

func (c *Cache) moveToFront(s int32) {
	if c.head == s {
		return
	}
	c.unlink(s)
	c.pushFront(s)
}

func (c *Cache) pushFront(s int32) {
	e := &c.entries[s]
	e.prev, e.next = nilSlot, c.head
	if c.head != nilSlot {
		c.entries[c.head].prev = s
	}
	c.head = s
	if c.tail == nilSlot {
		c.tail = s
	}
}

func (c *Cache) unlink(s int32) {
	e := &c.entries[s]
	if e.prev != nilSlot {
		c.entries[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nilSlot {
		c.entries[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nilSlot, nilSlot
}
