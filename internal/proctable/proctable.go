// Package proctable keeps a table of the host's live processes, fed by
// process connector events in the order the kernel numbered them, and a
// bounded memory of the ones that exited, for the lineage of the rest. It
// is pure: it reads no files and keeps no clocks. What /proc says about a
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
// A group lives while its leader or a thread the table tracks lives: when
// the leader exits (pthread_exit) while the table tracks other threads of
// its group, the group keeps its entry until the last of them exits.
//
// # Identity
//
// A process's EntityID is "<boot id>:<tgid>:<start ticks>", where start
// ticks is the task's start in CLOCK_BOOTTIME clock ticks, the value of
// field 22 (starttime) of /proc/<pid>/stat. A process seeded from /proc
// takes that field as read. A process first seen by its fork event gets it
// from the event's timestamp, which is CLOCK_MONOTONIC nanoseconds:
// ticks = (timestamp_ns + Options.BoottimeOffsetNs) / proc.TickNs, where
// the offset is CLOCK_BOOTTIME - CLOCK_MONOTONIC (the time spent
// suspended), measured by the caller. The kernel stamps the start a few
// microseconds before it sends the fork event, so when the event falls
// within AmbiguousNs after a tick boundary the tick may be one too high:
// Fork reports that (ForkResult.Ambiguous) and the caller reads the start
// from /proc and calls SetStart before the id is used. So the id is the
// same whether the process was seen forking or seeded after a restart.
// An event the kernel was slower to send (under load) gives a tick too
// high that nothing flags; the table then keeps that id for the process's
// life (a read of it by Seed or Resync is recognised as the same process,
// see sameLife), and a daemon restart seeds it with the true tick.
//
// Whether two records of a pid are one process is decided by one rule,
// sameLife, in Fork, Seed, Resync and Confirm.
//
// # Lineage
//
// Every entry links to its parent's entry, by identity: the process that
// forked it (or, for a process seeded from /proc, the one /proc named as
// its parent), never whatever holds that pid later. A link is made only to
// a process that did not start after the child (startedAfter), and a
// missing one is looked for again (by the child's PPID, with the same
// check) when the lineage is read, so a parent seeded after its child is
// found. When an exit or coredump event names the task's current parent
// (the reaper, for an orphan), Reparent follows it.
//
// A process that exits leaves the live table but is remembered, marked
// Exited, with its links: its children's events name it as their parent
// (until an exit or coredump event names the reaper), and ancestors are
// read through it. Processes whose exit was lost (Resync, Confirm, a fork
// over a held pid) are remembered the same way. Live and remembered
// entries can be read by entity id (Entity) and by parent (Children).
//
// # Bounds and eviction
//
// At most Options.MaxEntries live thread groups and threads together. When
// a new one would pass the bound, the thread group touched least recently
// by any event (its own, or a fork of a child) is evicted with its threads
// (counted in Stats.Evicted); its later events find no entry and are
// described from /proc, or as missing, by the caller; its children lose
// their link to it (until it is seeded again). An exit is always
// processed: it removes the entry it ends, so the table never holds more
// than it must.
//
// At most Options.MaxExited remembered exited processes. When one more
// must be remembered, the table forgets first the one that has been a
// leaf longest (no child, live or remembered, links to it: nothing's
// lineage goes through it), and only when every remembered process is
// some process's parent, the one that exited longest ago (counted in
// Stats.Forgotten). A forgotten process's children lose their link to it;
// forgetting a leaf may make its parent a leaf. So the lineage of live
// processes is the last to go.
//
// A Table is not safe for concurrent use.
package proctable

import (
	"github.com/cnbridged/cnbridged/internal/lru"
)

// DefaultMaxEntries is the default bound on entries.
const DefaultMaxEntries = 65536

// DefaultMaxExited is the default bound on remembered exited processes.
const DefaultMaxExited = 8192

// Options configure a Table.
type Options struct {
	MaxEntries int // thread groups plus threads; <= 0: DefaultMaxEntries
	// MaxExited bounds the exited processes remembered for lineage; 0:
	// DefaultMaxExited; < 0: none.
	MaxExited int
	BootID    string // /proc/sys/kernel/random/boot_id
	// BoottimeOffsetNs is CLOCK_BOOTTIME - CLOCK_MONOTONIC now.
	BoottimeOffsetNs int64
	// BootWallNs is the wall time of boot, Unix nanoseconds, for StartTime.
	BootWallNs int64
}

// Stats are the table's counters.
type Stats struct {
	Processes, Threads int
	Exited             int    // exited processes remembered
	Evicted            uint64 // thread groups evicted by the bound
	ThreadsDropped     uint64 // threads not tracked: no room and nothing to evict
	Forgotten          uint64 // remembered exited processes forgotten by their bound
}

// Where an entry is.
const (
	stLive   uint8 = iota // in procs
	stExited              // in the exited memory
	stGone                // evicted or forgotten: in neither
)

type entry struct {
	cur *Process
	// snap is cur marked Exited, exitNs its exit time: see Table.view.
	snap    *Process
	exitNs  uint64
	threads []uint32 // tids of the group's other threads
	// parent is the parent's entry (live or exited) while the table holds
	// it; child is the first of the entries whose parent this is, linked
	// through prev and next.
	parent, child, prev, next *entry
	state                     uint8
	// leaderGone: the leader thread has exited; the group ends with the
	// last thread the table tracks.
	leaderGone bool
	// unread: forked from a parent the table did not hold, nothing known
	// about it yet (see Seed).
	unread bool
	// threaded: the group may have had threads (the table tracked or
	// dropped one, or it was seeded, or held during a loss): exits of
	// threads may follow its end (see Table.last).
	threaded bool
}

// Table is the process table.
type Table struct {
	o       Options
	procs   *lru.Map[uint32, *entry]
	threads map[uint32]uint32 // tid → tgid
	// The exited memory: leaves (no child links to them) and inner
	// entries (some do), each in the order they entered it; last maps a
	// tgid to its most recently exited group that may have had threads,
	// for the exits of threads the kernel reports after the group ended
	// (exit_group).
	leaves, inner *lru.Map[key, *entry]
	last          map[uint32]*entry
	stats         Stats
}

// New returns an empty table.
func New(o Options) *Table {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	switch {
	case o.MaxExited == 0:
		o.MaxExited = DefaultMaxExited
	case o.MaxExited < 0:
		o.MaxExited = 0
	}
	return &Table{o: o, procs: lru.New[uint32, *entry](o.MaxEntries), threads: map[uint32]uint32{},
		leaves: lru.New[key, *entry](o.MaxExited), inner: lru.New[key, *entry](o.MaxExited),
		last: map[uint32]*entry{}}
}

// Reset empties the table and takes o, as New(o) would, but keeps the
// counts of Stats that only grow (Evicted, ThreadsDropped, Forgotten):
// they count over the table's whole life, however often it starts anew
// (as when enrichment is turned off and on again).
func (t *Table) Reset(o Options) {
	st := t.stats
	*t = *New(o)
	t.stats.Evicted, t.stats.ThreadsDropped, t.stats.Forgotten = st.Evicted, st.ThreadsDropped, st.Forgotten
}

// SetBoottimeOffset updates CLOCK_BOOTTIME - CLOCK_MONOTONIC (it grows by
// the time spent suspended).
func (t *Table) SetBoottimeOffset(ns int64) { t.o.BoottimeOffsetNs = ns }

// Len returns the number of live entries: thread groups plus threads.
func (t *Table) Len() int { return t.procs.Len() + len(t.threads) }

// MaxEntries returns the bound on Len.
func (t *Table) MaxEntries() int { return t.o.MaxEntries }

// MaxExited returns the bound on remembered exited processes.
func (t *Table) MaxExited() int { return t.o.MaxExited }

// Stats returns the counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Processes, s.Threads = t.procs.Len(), len(t.threads)
	s.Exited = t.leaves.Len() + t.inner.Len()
	return s
}

// Get returns the current snapshot of the live thread group tgid, or nil.
func (t *Table) Get(tgid uint32) *Process {
	if e, ok := t.procs.Peek(tgid); ok {
		return e.cur
	}
	return nil
}

// Lookup returns the snapshot of the live thread group that task pid (a
// process or a thread) belongs to, or nil.
func (t *Table) Lookup(pid uint32) *Process {
	if g, ok := t.threads[pid]; ok {
		pid = g
	}
	return t.Get(pid)
}

// All calls f for every live thread group, most recently used first.
func (t *Table) All(f func(*Process) bool) {
	t.procs.All(func(_ uint32, e *entry) bool { return f(e.cur) })
}

// Exited calls f for every remembered exited process, in no order.
func (t *Table) Exited(f func(*Process) bool) {
	ok := true
	for _, m := range []*lru.Map[key, *entry]{t.leaves, t.inner} {
		m.All(func(_ key, e *entry) bool { ok = f(t.view(e)); return ok })
		if !ok {
			return
		}
	}
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

// addThread tracks thread tid of group e, if there is room.
func (t *Table) addThread(e *entry, tid uint32) {
	tgid := e.cur.TGID
	if tid == tgid {
		return
	}
	if _, dup := t.threads[tid]; dup {
		return
	}
	e.threaded = true
	if !t.makeRoom(tgid) {
		t.stats.ThreadsDropped++
		return
	}
	t.threads[tid] = tgid
	e.threads = append(e.threads, tid)
}

// insert stores p as a new live group, ending the process the table held
// under its pid (that pid was free for p, so it had exited, its exit
// lost), and evicting by the bound.
func (t *Table) insert(p *Process) *entry {
	tgid := p.TGID
	if old, ok := t.procs.Peek(tgid); ok {
		t.end(old, 0)
	}
	t.makeRoom(tgid)
	e := &entry{cur: p}
	if _, old, evicted := t.procs.Put(tgid, e); evicted && old != nil {
		t.evicted(old)
	}
	return e
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
		t.procs.Remove(k)
		t.evicted(e)
	}
	return true
}

// evicted lets go of e, evicted from procs by the bound: not known to
// have ended, so not remembered.
func (t *Table) evicted(e *entry) {
	t.dropThreads(e)
	t.unlink(e)
	t.orphan(e)
	e.state = stGone
	t.stats.Evicted++
}

// end moves the live group e, which has ended (exit event at tsNs, or 0:
// its exit was lost), to the exited memory.
func (t *Table) end(e *entry, tsNs uint64) {
	t.dropThreads(e)
	t.procs.Remove(e.cur.TGID)
	e.exitNs = tsNs
	e.leaderGone = false
	t.remember(e)
}
