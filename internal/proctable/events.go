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
	// Known: the table already held this process (seeded from /proc by a
	// resync before its fork event was applied): the snapshot is that
	// entry's, with its identity and what the read said, and the fork's
	// timestamp added.
	Known bool
	// Replaced is the process the table held under the child's pid with
	// another start: it has ended, since its pid was free for this fork,
	// and its exit event was lost. Nil when there was none, or when the
	// table held this same process (Known).
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
		t.addThread(e, childPID)
		return e.cur, ForkResult{Thread: true, ParentKnown: true}
	}
	ticks, amb := t.StartTicks(tsNs)
	born := life{ticks: ticks, forkNs: tsNs}
	pe, parentOK := t.procs.Get(parentTGID) // a fork touches its parent too
	res := ForkResult{Ambiguous: amb}
	if old, ok := t.procs.Peek(childTGID); ok {
		if sameLife(lifeOf(old.cur), born) {
			t.procs.Get(childTGID)
			if old.cur.ForkNs != tsNs {
				p := *old.cur
				p.ForkNs = tsNs
				old.cur = &p
			}
			return old.cur, ForkResult{Known: true, ParentKnown: true}
		}
		res.Replaced = old.cur
	}
	p := &Process{PID: childPID, TGID: childTGID, PPID: parentTGID, StartTicks: ticks, ForkNs: tsNs}
	if parentOK && !startedAfter(pe.cur, p) {
		inherit(p, pe.cur)
		res.ParentKnown = true
	} else {
		p.Missing = missingAll
	}
	t.stamp(p)
	e := t.insert(p)
	e.unread = !res.ParentKnown
	if res.ParentKnown && pe.state == stLive {
		t.link(e, pe)
	}
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
	t.checkLinks(e)
	return e.cur
}

// Exec records an exec by pid (after exec, pid == tgid) with what /proc
// said. When o.Gone, the new image is unknown: exe, cmdline, cwd and comm
// (which exec sets from the new image's name) are marked missing, exe,
// cmdline and comm left empty; what exec keeps (uid, gid, cgroup, the
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
		p.Exe, p.Cmdline, p.CmdlineTruncated, p.Comm = "", nil, false, ""
		p.Missing = appendMissing(p.Missing, FieldExe, FieldCmdline, FieldCwd, FieldComm)
	case ok:
		applyImage(&p, o)
	default:
		apply(&p, o)
		p.PPID, p.StartTicks, p.SeenNs = o.PPID, o.StartTicks, o.ReadNs
	}
	if !ok {
		t.stamp(&p)
		return t.insert(&p).cur
	}
	// Exec from a non-leader thread: the kernel has made it the leader and
	// ended the other threads.
	t.dropThreads(e)
	e.leaderGone = false
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

// Exit records the exit of task pid at tsNs and returns the snapshot the
// event describes: the group's (thread true) for a thread, also after the
// group ended (the most recent exited group of each tgid is remembered for
// that); for the leader, its group's last snapshot. nil: unknown.
//
// The group ends (leaves the live table for the exited memory) at its
// leader's exit, unless the table tracks other threads of it: a leader
// that exits first (pthread_exit) leaves the group alive, and it ends at
// the exit of the last thread the table tracks.
func (t *Table) Exit(pid, tgid uint32, tsNs uint64) (p *Process, thread bool) {
	if pid != tgid {
		if g, ok := t.threads[pid]; ok {
			delete(t.threads, pid)
			if e, ok := t.procs.Peek(g); ok {
				e.threads = removeTID(e.threads, pid)
			}
		}
		if e, ok := t.procs.Peek(tgid); ok {
			p := e.cur
			if e.leaderGone && len(e.threads) == 0 {
				t.end(e, tsNs)
			}
			return p, true
		}
		if e := t.last[tgid]; e != nil {
			return t.view(e), true
		}
		return nil, true
	}
	e, ok := t.procs.Peek(tgid)
	if !ok {
		return nil, false
	}
	if len(e.threads) > 0 {
		e.leaderGone = true
		return e.cur, false
	}
	p = e.cur
	t.end(e, tsNs)
	return p, false
}
