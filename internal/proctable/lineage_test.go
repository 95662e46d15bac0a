package proctable

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ids(ps []*Process) []string {
	var out []string
	for _, p := range ps {
		s := p.EntityID
		if p.Exited {
			s += " exited"
		}
		out = append(out, s)
	}
	return out
}

// TestOrphanAfterPidReuse: P forks C and exits; a newcomer N takes P's pid
// later. C's parent is P as it was, marked exited, never N (on the code
// before, Parent was whatever held the pid: N); its ancestors go on
// through P's parent. When an exit or coredump event names C's reaper,
// the table follows it.
func TestOrphanAfterPidReuse(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	sh, _ := tb.Fork(1, 50, 50, 1_005_000_000)                              // tick 200
	p, _ := tb.Fork(50, 100, 100, 2_005_000_000)                            // tick 300
	tb.Exec(100, 100, &Observed{Exe: "/bin/parent", Comm: "parent"}, false) // P's image
	tb.Fork(100, 101, 101, 2_015_000_000)                                   // C, tick 301
	tb.Exit(100, 100, 2_500_000_000)
	n, _ := tb.Fork(50, 100, 100, 2_805_000_000) // tick 380: N takes P's pid
	c := tb.Exec(101, 101, &Observed{Exe: "/bin/true", Comm: "true"}, false)

	pa := tb.Parent(c)
	if pa == nil || pa.EntityID != p.EntityID || !pa.Exited || pa.Exe != "/bin/parent" || pa.ExitNs != 2_500_000_000 {
		t.Fatalf("parent of the orphan: got %+v, want P (%s) as it was, exited", pa, p.EntityID)
	}
	want := []string{p.EntityID + " exited", sh.EntityID, "b00t:1:1"}
	if diff := cmp.Diff(want, ids(tb.Ancestors(nil, c, 10))); diff != "" {
		t.Errorf("ancestors of the orphan (-want +got):\n%s", diff)
	}
	if got := ids(tb.Children(nil, n)); len(got) != 0 {
		t.Errorf("children of the newcomer: %v, want none", got)
	}
	if got := ids(tb.Children(nil, pa)); !slices.Equal(got, []string{c.EntityID}) {
		t.Errorf("children of P: %v, want [C]", got)
	}
	if e := tb.Entity(p.EntityID); e == nil || !e.Exited {
		t.Errorf("Entity(P): %+v, want P exited", e)
	}
	if e := tb.Entity(n.EntityID); e != n {
		t.Errorf("Entity(N): %+v, want N", e)
	}
	// C's exit names its reaper, init.
	c = tb.Reparent(101, 1)
	if c.PPID != 1 {
		t.Errorf("PPID after Reparent: %d, want 1", c.PPID)
	}
	if pa := tb.Parent(c); pa == nil || pa.TGID != 1 {
		t.Errorf("parent after Reparent: %+v, want init", pa)
	}
	if got := tb.Children(nil, p); len(got) != 0 {
		t.Errorf("P's children after C's reparenting: %v, want none", ids(got))
	}
	// Reparent to a process that started after C is not followed as a
	// link (the pid's holder is not C's reaper).
	c = tb.Reparent(101, 100)
	if pa := tb.Parent(c); pa != nil {
		t.Errorf("parent after Reparent to the newcomer's pid: %+v, want none", pa)
	}
	if c := tb.Reparent(101, 0); c.PPID != 100 {
		t.Errorf("Reparent to 0 (a reaped task's exit) changed PPID to %d", c.PPID)
	}
}

// TestParentNeverLater: a process seeded with a PPID whose holder started
// after it (its parent exited and the pid came round) has no parent; one
// whose parent is seeded after it finds it when the lineage is read.
func TestParentNeverLater(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 7, StartTicks: 900})
	c := tb.Seed(&Observed{PID: 8, PPID: 7, StartTicks: 500})
	if pa := tb.Parent(c); pa != nil {
		t.Errorf("parent: got %+v, want none (pid 7 started after the child)", pa)
	}
	d := tb.Seed(&Observed{PID: 9, PPID: 10, StartTicks: 600})
	tb.Seed(&Observed{PID: 10, PPID: 7, StartTicks: 550})
	if got := ids(tb.Ancestors(nil, d, 5)); !slices.Equal(got, []string{"b00t:10:550"}) {
		t.Errorf("ancestors: %v, want the parent seeded after the child, and not pid 7", got)
	}
	// A process the table does not hold (described from /proc).
	if pa := tb.Parent(&Process{TGID: 11, PPID: 7, StartTicks: 800}); pa != nil {
		t.Errorf("parent of an unheld process: %+v, want none", pa)
	}
	if pa := tb.Parent(&Process{TGID: 11, PPID: 7, StartTicks: 950}); pa == nil || pa.TGID != 7 {
		t.Errorf("parent of an unheld process: %+v, want pid 7", pa)
	}
}

// TestResyncDelayedFork: a fork event the kernel sent more than a tick
// after the task's start gives a tick too high; a resync that reads the
// true start after the event keeps the process, its id unchanged, and
// Confirm of it uses the same rule. On the code before (exact
// comparison), the live process was returned as lost and seeded again
// with a new id.
func TestResyncDelayedFork(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1})
	p, res := tb.Fork(1, 40, 40, 2_025_000_000) // tick 302; it started at 300
	if res.Ambiguous {
		t.Fatal("fork ambiguous")
	}
	lost, absent, added := tb.Resync([]Observed{{PID: 1, StartTicks: 1}, {PID: 40, StartTicks: 300, ReadNs: 2_100_000_000}})
	if len(lost) != 0 || len(absent) != 0 || len(added) != 0 {
		t.Fatalf("resync: lost %v absent %v added %v; want none", ids(lost), ids(absent), ids(added))
	}
	if cur := tb.Get(40); cur != p {
		t.Errorf("after the resync: %+v, want the forked entry %s unchanged", cur, p.EntityID)
	}
	// A later process on the pid: a start after the fork event.
	lost, _, added = tb.Resync([]Observed{{PID: 1, StartTicks: 1}, {PID: 40, StartTicks: 303, ReadNs: 2_100_000_000}})
	if len(lost) != 1 || lost[0] != p || len(added) != 1 || added[0].StartTicks != 303 {
		t.Errorf("resync over a reused pid: lost %v added %v; want the forked one lost, the new one added", ids(lost), ids(added))
	}
	if e := tb.Entity(p.EntityID); e == nil || !e.Exited || e.ExitNs != 0 {
		t.Errorf("the lost process: %+v, want remembered as exited, exit time unknown", e)
	}
	if tb.Confirm(p) != nil {
		t.Error("Confirm of the lost process found it again")
	}
	if got := tb.Confirm(added[0]); got == nil || got.StartTicks != 303 || tb.Get(40) != nil {
		t.Errorf("Confirm of the seeded process: %+v", got)
	}
}

// TestSeedFillsUnread: a fork whose parent the table does not hold leaves
// the child empty; the read of the same process fills it and keeps its
// identity (the fork's tick), not marked seeded. On the code before, a
// read a tick below replaced the child (a new id, marked seeded), and a
// read of the same tick was dropped (the child stayed empty).
func TestSeedFillsUnread(t *testing.T) {
	tb := newTable(0)
	c, res := tb.Fork(77, 78, 78, 3_005_000_000) // tick 400
	if res.ParentKnown || !slices.Equal(c.Missing, missingAll) {
		t.Fatalf("fork of an unknown parent: %+v %+v", c, res)
	}
	got := tb.Seed(&Observed{PID: 78, PPID: 77, StartTicks: 399, ReadNs: 3_006_000_000, Exe: "/bin/x", Comm: "x", UID: 5})
	if got.EntityID != c.EntityID || got.Exe != "/bin/x" || got.UID != 5 || got.Seeded || len(got.Missing) != 0 || got.ForkNs != c.ForkNs {
		t.Errorf("Seed of the unread child: got %+v, want the read's fields under the fork's identity", got)
	}
	if again := tb.Seed(&Observed{PID: 78, StartTicks: 399, ReadNs: 3_007_000_000, Exe: "/bin/y"}); again != got {
		t.Errorf("a second read replaced the filled entry: %+v", again)
	}
}

// TestSeedThreads: a seeded group with threads keeps its entry when its
// leader exits first (the kernel's zombie leader of a live group), so the
// threads' later events are described from the table; on the code before
// the group was dropped and read again from /proc (exe missing, seeded).
func TestSeedThreads(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 20, StartTicks: 3, Exe: "/bin/app", Threads: []uint32{21, 22}})
	if tb.Lookup(22) == nil || tb.Len() != 3 {
		t.Fatalf("seeded threads: Lookup(22) %v, Len %d", tb.Lookup(22), tb.Len())
	}
	tb.Exit(20, 20, 1e9)
	if p := tb.Update(21, 20, nil); p == nil || p.Exe != "/bin/app" {
		t.Errorf("an event of a thread after the leader's exit: %+v, want the group", p)
	}
	tb.Exit(21, 20, 2e9)
	tb.Exit(22, 20, 2e9)
	if tb.Get(20) != nil || tb.Len() != 0 {
		t.Errorf("the group outlived its threads: Len %d", tb.Len())
	}
}

// TestExitedBound: the exited memory holds at most MaxExited processes,
// forgets leaves first (the oldest first), keeps the lineage of live
// processes the longest, and a forgotten parent leaves its children
// without one (never a later holder of its pid).
func TestExitedBound(t *testing.T) {
	tb := New(Options{MaxExited: 3, BootID: boot, BoottimeOffsetNs: 1e9, BootWallNs: 1e18})
	tb.Seed(&Observed{PID: 1, StartTicks: 1})
	ts := uint64(2_005_000_000)
	fork := func(parent, child uint32) *Process {
		ts += 20_000_000
		p, _ := tb.Fork(parent, child, child, ts)
		return p
	}
	exit := func(pid uint32) {
		ts += 20_000_000
		tb.Exit(pid, pid, ts)
	}
	a := fork(1, 10)
	live := fork(10, 11) // a's child lives on
	exit(10)             // a: inner (its child lives)
	for pid := uint32(20); pid < 25; pid++ {
		fork(1, pid)
		exit(pid) // leaves, forgotten oldest first
	}
	remembered := func() []uint32 {
		var out []uint32
		tb.Exited(func(p *Process) bool { out = append(out, p.TGID); return true })
		slices.Sort(out)
		return out
	}
	if got := remembered(); !slices.Equal(got, []uint32{10, 23, 24}) {
		t.Errorf("remembered %v, want a (10) and the two latest leaves", got)
	}
	if st := tb.Stats(); st.Exited != 3 || st.Forgotten != 3 {
		t.Errorf("stats %+v, want 3 remembered, 3 forgotten", st)
	}
	if pa := tb.Parent(live); pa == nil || pa.EntityID != a.EntityID || !pa.Exited {
		t.Errorf("the live child's exited parent: %+v, want a, remembered", pa)
	}
	// When every remembered process is a parent, the one that exited
	// first goes.
	fork(1, 30)
	fork(30, 31)
	exit(30) // forgets 23
	fork(1, 40)
	fork(40, 41)
	exit(40) // forgets 24
	if got := remembered(); !slices.Equal(got, []uint32{10, 30, 40}) {
		t.Errorf("remembered %v, want 10, 30, 40", got)
	}
	fork(1, 50)
	exit(50) // a leaf, but no room: a goes
	if got := remembered(); !slices.Equal(got, []uint32{30, 40, 50}) {
		t.Errorf("remembered %v, want 30, 40, 50", got)
	}
	if pa := tb.Parent(live); pa != nil {
		t.Errorf("parent of 11 after a was forgotten: %+v, want none", pa)
	}
	fork(1, 10) // pid 10 comes round
	if pa := tb.Parent(live); pa != nil {
		t.Errorf("parent of 11 after pid 10 came round: %+v, want none (it started later)", pa)
	}
	// A remembered child keeps its parent remembered; once the child is
	// forgotten, the parent is a leaf.
	exit(31) // forgets 50 (the only leaf); 31 is a leaf under 30
	if got := remembered(); !slices.Equal(got, []uint32{30, 31, 40}) {
		t.Errorf("remembered %v, want 30, 31, 40", got)
	}
	fork(1, 60)
	exit(60) // forgets 31: 30 becomes a leaf
	fork(1, 61)
	exit(61) // forgets 30, now the oldest leaf, before 40
	if got := remembered(); !slices.Equal(got, []uint32{40, 60, 61}) {
		t.Errorf("remembered %v, want 40, 60, 61", got)
	}
	if st := tb.Stats(); st.Exited != 3 || st.Forgotten != 9 {
		t.Errorf("stats %+v, want 3 remembered, 9 forgotten", st)
	}
}
