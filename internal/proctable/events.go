package proctable

// ForkResult says how Fork found its event.
type ForkResult struct {
	Thread bool // a new thread of an existing group
	// Ambiguous: the start tick derived from the timestamp may be one too
	// high; read it from /proc and call SetStart.
	Ambiguous bool
	// ParentKnown: the new process inherited from a parent in the table.
	// When false its fields are empty and Missing says so.
	ParentKnown bool
	// Replaced is the process the table held under the child's pid with
	// another start: it has ended, since its pid was free for this fork,
	// and its exit event was lost. Nil when there was none, or when the
	// table held this same process (seeded by a resync before its fork
	// event was applied).
	Replaced *Process
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
	// One tick apart is the same process: the tick derived from a
	// timestamp may be one too high, and no pid comes round again within
	// 10 ms.
	if old, ok := t.procs.Peek(childTGID); ok && max(old.cur.StartTicks, ticks)-min(old.cur.StartTicks, ticks) > 1 {
		res.Replaced = old.cur
	}
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
	p.Late = o.Late
	switch {
	case o.Gone:
		p.Exe, p.Cmdline, p.CmdlineTruncated = "", nil, false
		p.Missing = appendMissing(p.Missing, FieldExe, FieldCmdline, FieldCwd)
	case ok:
		applyImage(&p, o)
	default:
		apply(&p, o)
		p.PPID, p.StartTicks = o.PPID, o.StartTicks
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
