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
	"strconv"

	"github.com/cnbridged/cnbridged/internal/lru"
)

// DefaultMaxEntries is the default bound on entries.
const DefaultMaxEntries = 65536

// AmbiguousNs is how long after a clock tick boundary a fork timestamp may
// belong to the tick before it (the delay between the kernel stamping a
// task's start and sending its fork event, with margin).
const AmbiguousNs = 500_000

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

// Field names for Process.Missing.
const (
	FieldExe     = "exe"
	FieldCmdline = "cmdline"
	FieldCwd     = "cwd"
	FieldCgroup  = "cgroup"
	FieldUID     = "uid"
	FieldGID     = "gid"
	FieldComm    = "comm"
	FieldParent  = "parent"
)

// Process is what the table knows about one thread group at one moment.
// It is never changed once the table has handed it out.
type Process struct {
	EntityID        string
	PID, TGID, PPID uint32
	StartTicks      uint64 // CLOCK_BOOTTIME clock ticks since boot
	StartTime       int64  // Unix nanoseconds
	// ForkNs is the fork event's CLOCK_MONOTONIC timestamp; 0 for a
	// process the table did not see fork.
	ForkNs           uint64
	Exe              string
	Cmdline          []string
	CmdlineTruncated bool
	Cwd              string
	UID, EUID        uint32
	GID, EGID        uint32
	User             string
	Comm             string
	Cgroup           string
	ContainerID      string
	PodUID           string
	// PreviousExe is the image before the last exec (set from an exec on;
	// empty when that image is unknown or was read stale).
	PreviousExe string
	// Stale: the exe, cmdline and cwd came from a /proc read that may
	// already show a later exec of the same pid.
	Stale bool
	// Seeded: found by a /proc scan (at start or after loss), not by a
	// fork event.
	Seeded bool
	// Missing names the fields that could not be read and were inherited
	// from the parent or left empty.
	Missing []string
	// Execs counts the execs the table saw for this process.
	Execs uint32
}

// Observed is what /proc said about a process, handed in by the caller.
type Observed struct {
	PID, PPID        uint32
	StartTicks       uint64
	Exe              string
	Cmdline          []string
	CmdlineTruncated bool
	Cwd              string
	UID, EUID        uint32
	GID, EGID        uint32
	User             string
	Comm             string
	Cgroup           string
	ContainerID      string
	PodUID           string
	// Missing names fields that could not be read (e.g. exe of a kernel
	// thread, or a permission error); Gone reports that the process had
	// gone and nothing was read.
	Missing []string
	Gone    bool
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

// EntityID returns the id of the process with tgid that started at ticks.
func EntityID(bootID string, tgid uint32, ticks uint64) string {
	b := make([]byte, 0, len(bootID)+24)
	b = append(b, bootID...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(tgid), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, ticks, 10)
	return string(b)
}

// StartTicks converts a fork event's CLOCK_MONOTONIC timestamp to the
// start tick /proc reports, and whether it may be one tick too high.
func (t *Table) StartTicks(monoNs uint64) (ticks uint64, ambiguous bool) {
	b := int64(monoNs) + t.o.BoottimeOffsetNs
	if b < 0 {
		return 0, true
	}
	return uint64(b / t.o.TickNs), b%t.o.TickNs < AmbiguousNs
}

// EntityID returns the id of the process tgid that started at ticks.
func (t *Table) EntityID(tgid uint32, ticks uint64) string { return EntityID(t.o.BootID, tgid, ticks) }

// StartTime returns the wall time (Unix ns) of a start at ticks.
func (t *Table) StartTime(ticks uint64) int64 { return t.o.BootWallNs + int64(ticks)*t.o.TickNs }

func (t *Table) stamp(p *Process) {
	p.EntityID = EntityID(t.o.BootID, p.TGID, p.StartTicks)
	p.StartTime = t.o.BootWallNs + int64(p.StartTicks)*t.o.TickNs
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

// ForkResult says how Fork found its event.
type ForkResult struct {
	Thread bool // a new thread of an existing group
	// Ambiguous: the start tick derived from the timestamp may be one too
	// high; read it from /proc and call SetStart.
	Ambiguous bool
	// ParentKnown: the new process inherited from a parent in the table.
	// When false its fields are empty and Missing says so.
	ParentKnown bool
}

// Fork records a fork: a new thread (childPID != childTGID) or a new
// process that starts as a copy of its parent. tsNs is the event's
// timestamp. It returns the snapshot the event describes: the thread's
// group or the new process (nil for a thread of an unknown group).
func (t *Table) Fork(parentTGID, childPID, childTGID uint32, tsNs uint64) (*Process, ForkResult) {
	if childPID != childTGID {
		e, ok := t.procs.Get(childTGID)
		if !ok {
			return nil, ForkResult{Thread: true}
		}
		if _, dup := t.threads[childPID]; !dup {
			if !t.makeRoom(childTGID) {
				t.stats.ThreadsDropped++
				return e.cur, ForkResult{Thread: true, ParentKnown: true}
			}
			t.threads[childPID] = childTGID
			e.threads = append(e.threads, childPID)
		}
		return e.cur, ForkResult{Thread: true, ParentKnown: true}
	}
	ticks, amb := t.StartTicks(tsNs)
	p := &Process{PID: childPID, TGID: childTGID, PPID: parentTGID, StartTicks: ticks, ForkNs: tsNs}
	res := ForkResult{Ambiguous: amb}
	if pe, ok := t.procs.Get(parentTGID); ok { // a fork touches its parent too
		inherit(p, pe.cur)
		res.ParentKnown = true
	} else {
		p.Missing = missingAll
	}
	t.stamp(p)
	t.insert(childTGID, p)
	return p, res
}

var missingAll = []string{FieldExe, FieldCmdline, FieldCwd, FieldCgroup, FieldUID, FieldGID, FieldComm, FieldParent}

// inherit copies into p what a child shares with its parent after fork.
func inherit(p, parent *Process) {
	p.Exe, p.Cmdline, p.CmdlineTruncated, p.Cwd = parent.Exe, parent.Cmdline, parent.CmdlineTruncated, parent.Cwd
	p.UID, p.EUID, p.GID, p.EGID, p.User = parent.UID, parent.EUID, parent.GID, parent.EGID, parent.User
	p.Comm, p.Cgroup, p.ContainerID, p.PodUID = parent.Comm, parent.Cgroup, parent.ContainerID, parent.PodUID
	p.Stale = parent.Stale
	p.Missing = parent.Missing
}

// DurationNs returns how long the process ran until an event at exitNs
// (CLOCK_MONOTONIC): from its fork event when the table saw it (exact),
// else from its start tick (to the tick) with offsetNs = CLOCK_BOOTTIME -
// CLOCK_MONOTONIC.
func (p *Process) DurationNs(exitNs uint64, offsetNs int64) int64 {
	if p.ForkNs != 0 {
		return int64(exitNs - p.ForkNs)
	}
	const tick = 1e9 / 100
	return int64(exitNs) + offsetNs - int64(p.StartTicks)*tick
}

// SetStart corrects the start tick of tgid (read from /proc after an
// ambiguous fork) and returns the new snapshot, or nil if tgid is unknown.
func (t *Table) SetStart(tgid uint32, ticks uint64) *Process {
	e, ok := t.procs.Peek(tgid)
	if !ok {
		return nil
	}
	if e.cur.StartTicks == ticks {
		return e.cur
	}
	p := *e.cur
	p.StartTicks = ticks
	t.stamp(&p)
	e.cur = &p
	return e.cur
}

// Exec records an exec by pid (after exec, pid == tgid) with what /proc
// said. When o.Gone, the new image is unknown: exe, cmdline and cwd are
// left empty and marked missing; what exec keeps (uid, gid, cgroup, the
// parent) stays as the table knew it. stale marks a read that may show a
// later exec.
func (t *Table) Exec(pid, tgid uint32, o *Observed, stale bool) *Process {
	e, ok := t.procs.Get(tgid)
	var p Process
	if ok {
		p = *e.cur
	} else {
		p = Process{PID: tgid, TGID: tgid}
		if o.Gone {
			p.Missing = missingAll
		}
	}
	p.PreviousExe = p.Exe
	if p.Stale {
		// The image before was read stale: it may be this one.
		p.PreviousExe = ""
	}
	p.Execs++
	p.Stale = stale
	if o.Gone {
		p.Exe, p.Cmdline, p.CmdlineTruncated = "", nil, false
		p.Missing = appendMissing(p.Missing, FieldExe, FieldCmdline, FieldCwd)
	} else {
		known := ok
		apply(&p, o)
		if !known {
			p.PPID, p.StartTicks = o.PPID, o.StartTicks
		}
	}
	if !ok {
		t.stamp(&p)
		t.insert(tgid, &p)
		return t.Get(tgid)
	}
	// Exec from a non-leader thread: the kernel has made it the leader and
	// ended the other threads.
	t.dropThreads(e)
	e.cur = &p
	return e.cur
}

func apply(p *Process, o *Observed) {
	p.Exe, p.Cmdline, p.CmdlineTruncated, p.Cwd = o.Exe, o.Cmdline, o.CmdlineTruncated, o.Cwd
	p.UID, p.EUID, p.GID, p.EGID, p.User = o.UID, o.EUID, o.GID, o.EGID, o.User
	p.Comm, p.Cgroup, p.ContainerID, p.PodUID = o.Comm, o.Cgroup, o.ContainerID, o.PodUID
	p.Missing = o.Missing
}

func appendMissing(m []string, fields ...string) []string {
	out := append([]string(nil), m...)
next:
	for _, f := range fields {
		for _, have := range out {
			if have == f {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}

// Seed adds a process found by a /proc scan, marked Seeded, unless the
// table already has tgid with the same start. It returns the snapshot.
func (t *Table) Seed(o *Observed) *Process {
	if o.Gone {
		return nil
	}
	if cur := t.Get(o.PID); cur != nil && cur.StartTicks == o.StartTicks {
		return cur
	}
	p := &Process{PID: o.PID, TGID: o.PID, PPID: o.PPID, StartTicks: o.StartTicks, Seeded: true}
	apply(p, o)
	t.stamp(p)
	t.insert(o.PID, p)
	return p
}

// Update applies a uid, gid, sid or comm change of task pid in group tgid
// and returns the snapshot the event describes (nil: unknown group).
// Thread names (comm of a thread that is not the leader) leave the group
// unchanged; uid and gid changes apply to the group (the C library makes
// every thread change them together).
func (t *Table) Update(pid, tgid uint32, f func(*Process)) *Process {
	e, ok := t.procs.Get(tgid)
	if !ok {
		return nil
	}
	if f == nil {
		return e.cur
	}
	p := *e.cur
	f(&p)
	e.cur = &p
	return e.cur
}

// SetUID records a uid event; user is the name of ruid.
func (t *Table) SetUID(pid, tgid, ruid, euid uint32, user string) *Process {
	return t.Update(pid, tgid, func(p *Process) { p.UID, p.EUID, p.User = ruid, euid, user })
}

// SetGID records a gid event.
func (t *Table) SetGID(pid, tgid, rgid, egid uint32) *Process {
	return t.Update(pid, tgid, func(p *Process) { p.GID, p.EGID = rgid, egid })
}

// SetComm records a comm event.
func (t *Table) SetComm(pid, tgid uint32, comm string) *Process {
	if pid != tgid {
		return t.Update(pid, tgid, nil)
	}
	return t.Update(pid, tgid, func(p *Process) { p.Comm = comm })
}

// Exit records the exit of task pid. A thread's exit forgets the thread
// and returns its group's snapshot (thread true), also after the leader's
// exit (the last 1024 groups whose leader exited are remembered for that);
// a leader's exit removes the whole group and returns its last snapshot.
// nil: unknown.
func (t *Table) Exit(pid, tgid uint32) (p *Process, thread bool) {
	if pid != tgid {
		if g, ok := t.threads[pid]; ok {
			delete(t.threads, pid)
			if e, ok := t.procs.Peek(g); ok {
				e.threads = removeTID(e.threads, pid)
			}
		}
		if p := t.Get(tgid); p != nil {
			return p, true
		}
		p, _ := t.exited.Peek(tgid)
		return p, true
	}
	e, ok := t.procs.Peek(tgid)
	if !ok {
		return nil, false
	}
	t.dropThreads(e)
	t.procs.Remove(tgid)
	t.exited.Put(tgid, e.cur)
	return e.cur, false
}

// Remove forgets tgid and its threads (loss resync: the process is gone).
func (t *Table) Remove(tgid uint32) {
	if e, ok := t.procs.Peek(tgid); ok {
		t.dropThreads(e)
		t.procs.Remove(tgid)
	}
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

// Resync reconciles the table with a full /proc scan (after loss). An
// entry whose pid /proc shows with another start (a reused pid) is removed
// and returned in lost. An entry whose pid is not in live at all is
// returned in absent but kept: its exit event may still be on its way (the
// caller confirms it later, see Confirm). Every live process the table
// lacks is seeded and returned in added.
func (t *Table) Resync(live []Observed) (lost, absent, added []*Process) {
	byPID := make(map[uint32]*Observed, len(live))
	for i := range live {
		if !live[i].Gone {
			byPID[live[i].PID] = &live[i]
		}
	}
	t.procs.All(func(tgid uint32, e *entry) bool {
		switch o, ok := byPID[tgid]; {
		case !ok:
			absent = append(absent, e.cur)
		case o.StartTicks != e.cur.StartTicks:
			lost = append(lost, e.cur)
		}
		return true
	})
	for _, p := range lost {
		t.Remove(p.TGID)
	}
	for i := range live {
		o := &live[i]
		if o.Gone || t.Get(o.PID) != nil {
			continue
		}
		added = append(added, t.Seed(o))
	}
	return lost, absent, added
}

// Confirm removes p, reported absent by Resync, if the table still holds
// that process (no exit event came for it since), and returns its last
// snapshot; nil if it has left the table or its pid belongs to another
// process now.
func (t *Table) Confirm(p *Process) *Process {
	cur := t.Get(p.TGID)
	if cur == nil || cur.StartTicks != p.StartTicks {
		return nil
	}
	t.Remove(p.TGID)
	return cur
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
