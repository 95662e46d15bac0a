package proctable

import "github.com/cnbridged/cnbridged/internal/lru"

// key identifies one life of a pid in the exited memory: its start tick
// and its tgid, below 2^22 (the kernel's PID_MAX_LIMIT), in one word.
type key uint64

func keyOf(p *Process) key { return lifeKey(p.TGID, p.StartTicks) }

func lifeKey(tgid uint32, ticks uint64) key { return key(ticks<<22 | uint64(tgid)&(1<<22-1)) }

// view returns what e describes: its current snapshot, or for a
// remembered exited entry its last one marked Exited (made on first use:
// most exited processes are never read again).
func (t *Table) view(e *entry) *Process {
	if e.state != stExited {
		return e.cur
	}
	if e.snap == nil {
		p := *e.cur
		p.Exited, p.ExitNs = true, e.exitNs
		e.snap = &p
	}
	return e.snap
}

// link makes pe the parent of e, which has none, unless pe is e or one of
// its descendants.
func (t *Table) link(e, pe *entry) bool {
	if pe == e {
		return false
	}
	for a := pe.parent; a != nil && e.child != nil; a = a.parent {
		if a == e {
			return false
		}
	}
	e.parent, e.prev, e.next = pe, nil, pe.child
	if pe.child != nil {
		pe.child.prev = e
	}
	pe.child = e
	return true
}

// unlink detaches e from its parent.
func (t *Table) unlink(e *entry) {
	pe := e.parent
	if pe == nil {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		pe.child = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.parent, e.prev, e.next = nil, nil, nil
	if pe.state == stExited && pe.child == nil {
		// A leaf now: the first to be forgotten.
		k := keyOf(pe.cur)
		t.inner.Remove(k)
		if old, ok := t.leaves.Peek(k); ok {
			t.forget(old) // the pid's previous life, in the same tick
		}
		t.leaves.Put(k, pe)
	}
}

// orphan detaches e's children from it.
func (t *Table) orphan(e *entry) {
	for c := e.child; c != nil; {
		next := c.next
		c.parent, c.prev, c.next = nil, nil, nil
		c = next
	}
	e.child = nil
}

// parentEntry returns e's parent entry: its link, else (linking it) the
// live group e's PPID names if it did not start after e.
func (t *Table) parentEntry(e *entry) *entry {
	if e.parent != nil {
		return e.parent
	}
	p := e.cur
	if p.PPID == 0 || p.PPID == p.TGID {
		return nil
	}
	pe, ok := t.procs.Peek(p.PPID)
	if !ok || startedAfter(pe.cur, p) || !t.link(e, pe) {
		return nil
	}
	return pe
}

// checkLinks drops the links of e that its start, just changed, makes
// impossible (a parent that started after its child).
func (t *Table) checkLinks(e *entry) {
	if e.parent != nil && startedAfter(e.parent.cur, e.cur) {
		t.unlink(e)
	}
	for c := e.child; c != nil; {
		next := c.next
		if startedAfter(e.cur, c.cur) {
			t.unlink(c)
		}
		c = next
	}
}

// remember puts e, just ended, in the exited memory, forgetting by the
// bound first.
func (t *Table) remember(e *entry) {
	for t.leaves.Len()+t.inner.Len() >= t.o.MaxExited {
		_, old, ok := t.leaves.Oldest()
		if !ok {
			_, old, ok = t.inner.Oldest()
		}
		if !ok {
			break
		}
		t.forget(old) // may be a child of e
	}
	if t.o.MaxExited == 0 {
		e.state = stGone
		t.unlink(e)
		t.orphan(e)
		return
	}
	k := keyOf(e.cur)
	m := func() *lru.Map[key, *entry] {
		if e.child != nil {
			return t.inner
		}
		return t.leaves
	}
	if old, ok := m().Peek(k); ok {
		t.forget(old) // the pid's previous life, in the same tick
	}
	e.state = stExited
	m().Put(k, e)
	if e.threaded {
		t.last[e.cur.TGID] = e
	}
}

// forget drops e from the exited memory.
func (t *Table) forget(e *entry) {
	k, tgid := keyOf(e.cur), e.cur.TGID
	if e.child != nil {
		t.inner.Remove(k)
	} else {
		t.leaves.Remove(k)
	}
	if e.threaded && t.last[tgid] == e {
		delete(t.last, tgid)
	}
	e.state = stGone
	t.unlink(e)
	t.orphan(e)
	t.stats.Forgotten++
}

func (t *Table) exitedAt(tgid uint32, ticks uint64) *entry {
	if e := t.last[tgid]; e != nil && e.cur.StartTicks == ticks {
		return e
	}
	k := lifeKey(tgid, ticks)
	if e, ok := t.leaves.Peek(k); ok {
		return e
	}
	if e, ok := t.inner.Peek(k); ok {
		return e
	}
	return nil
}

// entryOf returns the entry of p's process, live or remembered, or nil.
func (t *Table) entryOf(p *Process) *entry {
	if e, ok := t.procs.Peek(p.TGID); ok && e.cur.StartTicks == p.StartTicks {
		return e
	}
	return t.exitedAt(p.TGID, p.StartTicks)
}

// Parent returns p's parent as the table knows it: live, or exited and
// remembered (marked Exited). Never a process that started after p: a
// pid's later holder is not its parent. nil when unknown.
func (t *Table) Parent(p *Process) *Process {
	if e := t.entryOf(p); e != nil {
		if pe := t.parentEntry(e); pe != nil {
			return t.view(pe)
		}
		return nil
	}
	// A process the table does not hold (described from /proc).
	if p.PPID == 0 || p.PPID == p.TGID {
		return nil
	}
	if pe, ok := t.procs.Peek(p.PPID); ok && !startedAfter(pe.cur, p) {
		return pe.cur
	}
	return nil
}

// Ancestors appends to dst up to n ancestors of p, nearest first (its
// parent first), as far as the table knows them, live or remembered.
func (t *Table) Ancestors(dst []*Process, p *Process, n int) []*Process {
	var a *entry
	if e := t.entryOf(p); e != nil {
		a = t.parentEntry(e)
	} else if pa := t.Parent(p); pa != nil {
		a = t.entryOf(pa)
	}
	for ; a != nil && n > 0; n-- {
		dst = append(dst, t.view(a))
		a = t.parentEntry(a)
	}
	return dst
}

// Children appends to dst the children of p the table holds, live or
// remembered, the most recently linked first.
func (t *Table) Children(dst []*Process, p *Process) []*Process {
	e := t.entryOf(p)
	if e == nil {
		return dst
	}
	for c := e.child; c != nil; c = c.next {
		dst = append(dst, t.view(c))
	}
	return dst
}

// Entity returns the process with entity id id, live or remembered, or
// nil.
func (t *Table) Entity(id string) *Process {
	boot, tgid, ticks, ok := parseEntityID(id)
	if !ok || boot != t.o.BootID {
		return nil
	}
	if e, ok := t.procs.Peek(tgid); ok && e.cur.StartTicks == ticks {
		return e.cur
	}
	if e := t.exitedAt(tgid, ticks); e != nil {
		return t.view(e)
	}
	return nil
}

// Reparent records that tgid's parent is now ppid (an exit or coredump
// event names the task's current parent: the reaper, for an orphan) and
// returns the new snapshot; nil if tgid is unknown. ppid 0 (the kernel
// sends it when the task was already reaped) changes nothing. The new
// parent is linked if the table holds it and it did not start after
// tgid.
func (t *Table) Reparent(tgid, ppid uint32) *Process {
	e, ok := t.procs.Peek(tgid)
	if !ok {
		return nil
	}
	if ppid == 0 || ppid == tgid || e.cur.PPID == ppid {
		return e.cur
	}
	p := *e.cur
	p.PPID = ppid
	e.cur = &p
	t.unlink(e)
	t.parentEntry(e)
	return e.cur
}
