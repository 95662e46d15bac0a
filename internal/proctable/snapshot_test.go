package proctable

import (
	"testing"
)

// TestSnapshot: a snapshot holds every thread group with its parent (never
// one that started after the child), and keeps describing the moment it
// was taken while the table moves on.
func TestSnapshot(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	tb.Seed(&Observed{PID: 50, PPID: 1, StartTicks: 5, Exe: "/bin/sh"})
	// 60's parent pid 70 was reused by a process that started after it.
	tb.Seed(&Observed{PID: 60, PPID: 70, StartTicks: 6, Exe: "/bin/orphan"})
	tb.Seed(&Observed{PID: 70, PPID: 1, StartTicks: 9, Exe: "/bin/newcomer"})
	child, _ := tb.Fork(50, 100, 100, 2_005_000_000)

	s := tb.Snapshot()
	parents := map[uint32]uint32{}
	for _, e := range s.Entries {
		var pp uint32
		if e.Parent != nil {
			pp = e.Parent.TGID
		}
		parents[e.P.TGID] = pp
	}
	want := map[uint32]uint32{1: 0, 50: 1, 60: 0, 70: 1, 100: 50}
	if len(parents) != len(want) {
		t.Errorf("snapshot holds %v, want %v", parents, want)
	}
	for pid, pp := range want {
		if got, ok := parents[pid]; !ok || got != pp {
			t.Errorf("pid %d: parent %d (held %v), want %d", pid, got, ok, pp)
		}
	}
	if s.Stats.Processes != 5 || s.MaxEntries != tb.MaxEntries() {
		t.Errorf("stats %+v max %d, want 5 processes and %d", s.Stats, s.MaxEntries, tb.MaxEntries())
	}

	tb.Exec(100, 100, &Observed{Exe: "/bin/sleep"}, false)
	tb.Exit(50, 50)
	for _, e := range s.Entries {
		if e.P.TGID == 100 && (e.P != child || e.P.Exe != "/bin/sh") {
			t.Errorf("the snapshot's 100 changed after an exec: %+v", e.P)
		}
	}
	if len(s.Entries) != 5 {
		t.Errorf("the snapshot lost entries after an exit: %d", len(s.Entries))
	}
}

// BenchmarkSnapshot times a snapshot of a full default-size table: what
// the enricher spends between two batches for one query.
func BenchmarkSnapshot(b *testing.B) {
	tb := newTable(DefaultMaxEntries)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	for pid := uint32(2); pid <= DefaultMaxEntries; pid++ {
		tb.Seed(&Observed{PID: pid, PPID: 1 + pid/2, StartTicks: uint64(pid), Exe: "/bin/x"})
	}
	b.ResetTimer()
	for b.Loop() {
		if s := tb.Snapshot(); len(s.Entries) != DefaultMaxEntries {
			b.Fatalf("%d entries", len(s.Entries))
		}
	}
}
