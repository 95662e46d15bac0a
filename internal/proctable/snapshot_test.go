package proctable

import (
	"testing"
)

// TestSnapshot: a snapshot holds every live thread group and every
// remembered exited process (marked), each with its parent as the table
// links it (never one that started after the child), and keeps describing
// the moment it was taken while the table moves on.
func TestSnapshot(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	tb.Seed(&Observed{PID: 50, PPID: 1, StartTicks: 5, Exe: "/bin/sh"})
	// 60's parent pid 70 was reused by a process that started after it.
	tb.Seed(&Observed{PID: 60, PPID: 70, StartTicks: 6, Exe: "/bin/orphan"})
	tb.Seed(&Observed{PID: 70, PPID: 1, StartTicks: 9, Exe: "/bin/newcomer"})
	child, _ := tb.Fork(50, 100, 100, 2_005_000_000)
	grandchild, _ := tb.Fork(100, 101, 101, 2_015_000_000)
	tb.Exit(100, 100, 2_025_000_000) // remembered: 101's parent

	s := tb.Snapshot()
	type got struct {
		parent uint32
		exited bool
	}
	byPID := map[uint32]got{}
	for _, e := range s.Entries {
		var pp uint32
		if e.Parent != nil {
			pp = e.Parent.TGID
		}
		byPID[e.P.TGID] = got{pp, e.P.Exited}
	}
	want := map[uint32]got{1: {0, false}, 50: {1, false}, 60: {0, false}, 70: {1, false}, 100: {50, true}, 101: {100, false}}
	if len(byPID) != len(want) {
		t.Errorf("snapshot holds %v, want %v", byPID, want)
	}
	for pid, w := range want {
		if g, ok := byPID[pid]; !ok || g != w {
			t.Errorf("pid %d: %+v (held %v), want %+v", pid, g, ok, w)
		}
	}
	if s.Stats.Processes != 5 || s.Stats.Exited != 1 || s.MaxEntries != tb.MaxEntries() {
		t.Errorf("stats %+v max %d, want 5 processes, 1 exited and %d", s.Stats, s.MaxEntries, tb.MaxEntries())
	}

	tb.Exec(101, 101, &Observed{Exe: "/bin/sleep"}, false)
	tb.Exit(50, 50, 2_035_000_000)
	for _, e := range s.Entries {
		if e.P.TGID == 101 && (e.P != grandchild || e.P.Exe != "/bin/sh") {
			t.Errorf("the snapshot's 101 changed after an exec: %+v", e.P)
		}
		if e.P.TGID == 50 && e.P.Exited {
			t.Errorf("the snapshot's 50 exited after it was taken: %+v", e.P)
		}
	}
	if child.Exited {
		t.Error("the fork's snapshot of 100 was changed by its exit")
	}
	if len(s.Entries) != 6 {
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
	tb.Snapshot() // links made on the first read, as after the table's first questions
	b.ResetTimer()
	for b.Loop() {
		if s := tb.Snapshot(); len(s.Entries) != DefaultMaxEntries {
			b.Fatalf("%d entries", len(s.Entries))
		}
	}
}
