package proctable

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

// Remove forgets tgid and its threads (loss resync: the process is gone).
func (t *Table) Remove(tgid uint32) {
	if e, ok := t.procs.Peek(tgid); ok {
		t.dropThreads(e)
		t.procs.Remove(tgid)
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
