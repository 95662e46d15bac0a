package proctable

// Snapshot is the table at one moment, for readers on other goroutines
// (fleet queries): every entry's immutable *Process and its parent's, as
// the table links them. Taking one copies pointers only, so whoever owns
// the table can take it between two batches of events and hand it off;
// the readers then walk, filter and encode it on their own time, while the
// table moves on.
type Snapshot struct {
	// Entries are the table's thread groups, most recently used first.
	Entries []Entry
	// Stats are the table's counters when the snapshot was taken.
	Stats Stats
	// MaxEntries is the table's bound.
	MaxEntries int
}

// Entry is one process of a Snapshot.
type Entry struct {
	P *Process
	// Parent is P's parent as the table knows it, or nil: never a
	// process that started after P.
	Parent *Process
}

// Snapshot copies the table. It holds no reference into the table's own
// structures: the Processes it points to are never changed.
func (t *Table) Snapshot() *Snapshot {
	s := &Snapshot{Stats: t.Stats(), MaxEntries: t.o.MaxEntries, Entries: make([]Entry, 0, t.procs.Len())}
	t.All(func(p *Process) bool {
		s.Entries = append(s.Entries, Entry{P: p, Parent: t.parentOf(p)})
		return true
	})
	return s
}

// parentOf returns p's parent in the table: the live group its PPID names,
// unless that group started after p (a reused pid).
func (t *Table) parentOf(p *Process) *Process {
	if p.PPID == 0 || p.PPID == p.TGID {
		return nil
	}
	pp := t.Get(p.PPID)
	if pp == nil || pp.StartTicks > p.StartTicks {
		return nil
	}
	return pp
}
