// Package proctable keeps a table of the host's live processes, fed by
// process connector events in the order the kernel numbered them. It is
// pure: it reads no files and keeps no clocks. What /proc says about a
// process is read elsewhere (package procinfo) and handed in as an
// Observed value; clock offsets and the boot id come in Options.
//
// # Entries and snapshots
//
// The table holds one entry per thread group (keyed by tgid) and, apart
// from them, the ids of the group's other threads. An entry's current state
// is an immutable *Process snapshot: every change (exec, uid, gid, comm)
// makes a new snapshot, so a snapshot handed out with an event keeps
// describing the process as it was at that event, however long the event
// waits in a sink's queue.
//
// # Identity
//
// A process's EntityID is "<boot id>:<tgid>:<start ticks>", where start
// ticks is the task's start in CLOCK_BOOTTIME clock ticks, the value of
// field 22 (starttime) of /proc/<pid>/stat. A process seeded from /proc
// takes that field as read. A process first seen by its fork event gets it
// from the event's timestamp, which is CLOCK_MONOTONIC nanoseconds:
// ticks = (timestamp_ns + Options.BoottimeOffsetNs) / Options.TickNs, where
// the offset is CLOCK_BOOTTIME - CLOCK_MONOTONIC (the time spent
// suspended), measured by the caller. The kernel stamps the start a few
// microseconds before it sends the fork event, so when the event falls
// within AmbiguousNs after a tick boundary the tick may be one too high:
// Fork reports that (ForkResult.Ambiguous) and the caller reads the start
// from /proc and calls SetStart before the id is used. So the id is the
// same whether the process was seen forking or seeded after a restart.
//
// # Bound and eviction
//
// At most Options.MaxEntries thread groups and threads together. When a new
// one would pass the bound, the thread group touched least recently by any
// event (its own, or a fork of a child) is evicted with its threads (counted in Stats.Evicted); its later
// events find no entry and are described from /proc, or as missing, by the
// caller. An exit is always processed: it removes the entry it ends, so the
// table never holds more than it must.
//
// A Table is not safe for concurrent use.
package proctable

import (
	"github.com/cnbridged/cnbridged/internal/lru"
)

// DefaultMaxEntries is the default bound on entries.
const DefaultMaxEntries = 65536

// Options configure a Table.
type Options struct {
	MaxEntries int    // thread groups plus threads; <= 0: DefaultMaxEntries
	BootID     string // /proc/sys/kernel/random/boot_id
	// TickNs is the length of a clock tick (USER_HZ) in nanoseconds:
	// 10 000 000 for the usual 100 Hz.
	TickNs int64
	// BoottimeOffsetNs is CLOCK_BOOTTIME - CLOCK_MONOTONIC now.
	BoottimeOffsetNs int64
	// BootWallNs is the wall time of boot, Unix nanoseconds, for StartTime.
	BootWallNs int64
}

// Stats are the table's counters.
type Stats struct {
	Processes, Threads int
	Evicted            uint64 // thread groups evicted by the bound
	ThreadsDropped     uint64 // threads not tracked: no room and nothing to evict
}

type entry struct {
	cur     *Process
	threads []uint32 // tids of the group's other threads
}

// Table is the process table.
type Table struct {
	o       Options
	procs   *lru.Map[uint32, *entry]
	threads map[uint32]uint32 // tid → tgid
	// exited keeps the last snapshot of groups whose leader has exited,
	// for the exits of their other threads, which the kernel may report
	// after the leader's (exit_group). Bounded: exitedMax groups.
	exited *lru.Map[uint32, *Process]
	stats  Stats
}

// exitedMax bounds Table.exited.
const exitedMax = 1024

// New returns an empty table.
func New(o Options) *Table {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.TickNs <= 0 {
		o.TickNs = 10_000_000
	}
	return &Table{o: o, procs: lru.New[uint32, *entry](o.MaxEntries), threads: map[uint32]uint32{},
		exited: lru.New[uint32, *Process](exitedMax)}
}

// SetBoottimeOffset updates CLOCK_BOOTTIME - CLOCK_MONOTONIC (it grows by
// the time spent suspended).
func (t *Table) SetBoottimeOffset(ns int64) { t.o.BoottimeOffsetNs = ns }

// Len returns the number of entries: thread groups plus threads.
func (t *Table) Len() int { return t.procs.Len() + len(t.threads) }

// MaxEntries returns the bound on Len.
func (t *Table) MaxEntries() int { return t.o.MaxEntries }

// Stats returns the counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Processes, s.Threads = t.procs.Len(), len(t.threads)
	return s
}

// Get returns the current snapshot of thread group tgid, or nil.
func (t *Table) Get(tgid uint32) *Process {
	if e, ok := t.procs.Peek(tgid); ok {
		return e.cur
	}
	return nil
}

// Lookup returns the snapshot of the thread group that task pid (a
// process or a thread) belongs to, or nil.
func (t *Table) Lookup(pid uint32) *Process {
	if g, ok := t.threads[pid]; ok {
		pid = g
	}
	return t.Get(pid)
}

// Ancestors appends to dst up to n ancestors of p, nearest first, as far
// as the table knows them.
func (t *Table) Ancestors(dst []*Process, p *Process, n int) []*Process {
	seen := 0
	for cur := p; cur != nil && seen < n; seen++ {
		if cur.PPID == 0 || cur.PPID == cur.TGID {
			break
		}
		cur = t.Get(cur.PPID)
		if cur == nil {
			break
		}
		dst = append(dst, cur)
	}
	return dst
}

// All calls f for every thread group, most recently used first.
func (t *Table) All(f func(*Process) bool) {
	t.procs.All(func(_ uint32, e *entry) bool { return f(e.cur) })
}

// Threads calls f for every thread the table tracks, with its thread
// group, in no order.
func (t *Table) Threads(f func(tid, tgid uint32) bool) {
	for tid, tgid := range t.threads {
		if !f(tid, tgid) {
			return
		}
	}
}

func (t *Table) dropThreads(e *entry) {
	for _, tid := range e.threads {
		delete(t.threads, tid)
	}
	e.threads = nil
}

func removeTID(s []uint32, tid uint32) []uint32 {
	for i, v := range s {
		if v == tid {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}

// insert stores p as the group tgid, replacing an entry of a reused pid and
// evicting by the bound.
func (t *Table) insert(tgid uint32, p *Process) {
	t.exited.Remove(tgid)
	if e, ok := t.procs.Peek(tgid); ok {
		t.dropThreads(e)
		e.cur = p
		t.procs.Get(tgid)
		return
	}
	t.makeRoom(tgid)
	if _, old, evicted := t.procs.Put(tgid, &entry{cur: p}); evicted && old != nil {
		t.dropThreads(old)
		t.stats.Evicted++
	}
}

// makeRoom evicts least recently used groups (not keep) until one more
// entry fits; false if only keep is left to evict.
func (t *Table) makeRoom(keep uint32) bool {
	for t.Len() >= t.o.MaxEntries {
		k, e, ok := t.procs.Oldest()
		if !ok {
			return false
		}
		if k == keep {
			if t.procs.Len() == 1 {
				return false
			}
			t.procs.Get(k) // move it out of the way
			continue
		}
		t.dropThreads(e)
		t.procs.Remove(k)
		t.stats.Evicted++
	}
	return true
}
