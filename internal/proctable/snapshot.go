package proctable

// Snapshot is the table at one moment, for readers on other goroutines
// (fleet queries): every entry's immutable *Process — the live processes
// and the exited ones the table remembers, marked Exited — and its
// parent's, as the table links them (by identity, see Parent). Taking one
// copies pointers only, so whoever owns the table can take it between two
// batches of events and hand it off; the readers then walk, filter and
// encode it on their own time, while the table moves on.
type Snapshot struct {
	// Entries are the table's thread groups, most recently used first,
	// then the remembered exited processes.
	Entries []Entry
	// Stats are the table's counters when the snapshot was taken.
	Stats Stats
	// MaxEntries is the table's bound on live entries.
	MaxEntries int
}

// Entry is one process of a Snapshot.
type Entry struct {
	P *Process
	// Parent is P's parent as the table knows it (Table.Parent), or nil:
	// never a process that started after P.
	Parent *Process
}

// Snapshot copies the table. It holds no reference into the table's own
// structures: the Processes it points to are never changed.
func (t *Table) Snapshot() *Snapshot {
	st := t.Stats()
	s := &Snapshot{Stats: st, MaxEntries: t.o.MaxEntries, Entries: make([]Entry, 0, st.Processes+st.Exited)}
	add := func(e *entry) {
		en := Entry{P: t.view(e)}
		if pe := t.parentEntry(e); pe != nil {
			en.Parent = t.view(pe)
		}
		s.Entries = append(s.Entries, en)
	}
	t.procs.All(func(_ uint32, e *entry) bool { add(e); return true })
	t.leaves.All(func(_ key, e *entry) bool { add(e); return true })
	t.inner.All(func(_ key, e *entry) bool { add(e); return true })
	return s
}
