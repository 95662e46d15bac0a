package proctable

// Seed adds a process found by a /proc scan, marked Seeded, with the
// threads o lists, and returns its snapshot. When the table already holds
// that process (sameLife), it keeps it, identity included; if the table
// knew nothing of it (forked from a parent it did not hold, or seeded
// from a StartOnly read), the read fills it in. A process the table held
// under the pid with another start has ended (its exit lost) and is
// remembered as exited.
func (t *Table) Seed(o *Observed) *Process {
	if o.Gone {
		return nil
	}
	if e, ok := t.procs.Peek(o.PID); ok && sameLife(lifeOf(e.cur), lifeRead(o)) {
		if e.unread && !o.StartOnly {
			p := *e.cur
			apply(&p, o)
			p.SeenNs = o.ReadNs
			if p.PPID != o.PPID {
				p.PPID = o.PPID
				t.unlink(e)
			}
			e.cur, e.unread = &p, false
			for _, tid := range o.Threads {
				t.addThread(e, tid)
			}
		}
		return e.cur
	}
	p := &Process{PID: o.PID, TGID: o.PID, PPID: o.PPID, StartTicks: o.StartTicks, SeenNs: o.ReadNs, Seeded: true}
	apply(p, o)
	t.stamp(p)
	e := t.insert(p)
	e.unread, e.threaded = o.StartOnly, true
	for _, tid := range o.Threads {
		t.addThread(e, tid)
	}
	return p
}

// Remove ends tgid (loss resync: the process is gone, its exit lost): it
// leaves the live table for the exited memory.
func (t *Table) Remove(tgid uint32) {
	if e, ok := t.procs.Peek(tgid); ok {
		t.end(e, 0)
	}
}

// ThreadGroups returns the thread groups that have threads in the table.
func (t *Table) ThreadGroups() []uint32 {
	seen := make(map[uint32]bool)
	var out []uint32
	for _, tgid := range t.threads {
		if !seen[tgid] {
			seen[tgid] = true
			out = append(out, tgid)
		}
	}
	return out
}

// PruneThreads removes the threads of group tgid that live does not hold
// (after loss: their exit events were lost) and returns how many it
// removed.
func (t *Table) PruneThreads(tgid uint32, live func(tid uint32) bool) int {
	e, ok := t.procs.Peek(tgid)
	if !ok {
		return 0
	}
	n := 0
	kept := e.threads[:0]
	for _, tid := range e.threads {
		if live(tid) {
			kept = append(kept, tid)
			continue
		}
		delete(t.threads, tid)
		n++
	}
	e.threads = kept
	return n
}

// DropThread removes thread tid, if the table tracks it.
func (t *Table) DropThread(tid uint32) {
	if g, ok := t.threads[tid]; ok {
		delete(t.threads, tid)
		if e, ok := t.procs.Peek(g); ok {
			e.threads = removeTID(e.threads, tid)
		}
	}
}

// Resync reconciles the table with a full /proc scan (after loss). An
// entry whose pid /proc shows with another process (by sameLife: a reused
// pid) has ended and is returned in lost. An entry whose pid is not in
// live at all is returned in absent but kept: its exit event may still be
// on its way (the caller confirms it later, see Confirm). Every live
// process the table lacks is seeded and returned in added (from a
// StartOnly read: to be filled in by a Seed with a full read). Ended
// entries are remembered as exited.
func (t *Table) Resync(live []Observed) (lost, absent, added []*Process) {
	byPID := make(map[uint32]*Observed, len(live))
	for i := range live {
		if !live[i].Gone {
			byPID[live[i].PID] = &live[i]
		}
	}
	t.procs.All(func(tgid uint32, e *entry) bool {
		e.threaded = true // it may have made threads while events were lost
		switch o, ok := byPID[tgid]; {
		case !ok:
			absent = append(absent, e.cur)
		case !sameLife(lifeOf(e.cur), lifeRead(o)):
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

// Confirm ends p, reported absent by Resync, if the table still holds
// that process (sameLife: no exit event came for it since), and returns
// its last snapshot; nil if it has left the table or its pid belongs to
// another process now.
func (t *Table) Confirm(p *Process) *Process {
	e, ok := t.procs.Peek(p.TGID)
	if !ok || !sameLife(lifeOf(e.cur), lifeOf(p)) {
		return nil
	}
	cur := e.cur
	t.end(e, 0)
	return cur
}
