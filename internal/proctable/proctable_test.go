package proctable

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const boot = "b00t"

func newTable(max int) *Table {
	return New(Options{MaxEntries: max, BootID: boot, BoottimeOffsetNs: 1_000_000_000, BootWallNs: 1e18})
}

func TestLifecycle(t *testing.T) {
	tb := newTable(0)
	init := tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init", Cmdline: []string{"init"}, UID: 0, Comm: "init", Cgroup: "/init.scope"})
	if !init.Seeded || init.EntityID != "b00t:1:1" {
		t.Fatalf("seeded init: got %+v", init)
	}
	// Fork at monotonic 2.005 s: boottime 3.005 s, tick 300.
	child, res := tb.Fork(1, 100, 100, 2_005_000_000)
	if !res.ParentKnown || res.Thread || res.Ambiguous {
		t.Errorf("fork result %+v", res)
	}
	if child.StartTicks != 300 || child.EntityID != "b00t:100:300" || child.Exe != "/sbin/init" || child.Cgroup != "/init.scope" {
		t.Errorf("forked child: got %+v, want tick 300 and the parent's image", child)
	}
	if child.StartTime != 1e18+3e9 {
		t.Errorf("StartTime %d, want boot + 3 s", child.StartTime)
	}
	execd := tb.Exec(100, 100, &Observed{Exe: "/bin/sleep", Cmdline: []string{"sleep", "1"}, Comm: "sleep", Cgroup: "/init.scope"}, false)
	if execd.EntityID != child.EntityID || execd.PreviousExe != "/sbin/init" || execd.Exe != "/bin/sleep" {
		t.Errorf("exec: got %+v", execd)
	}
	if child.Exe != "/sbin/init" {
		t.Errorf("the fork's snapshot changed after exec: %+v", child)
	}
	uid := tb.SetUID(100, 100, 1000, 1000, "alice")
	if uid.UID != 1000 || uid.User != "alice" || execd.UID != 0 {
		t.Errorf("uid: got %+v (exec snapshot uid %d)", uid, execd.UID)
	}
	tb.SetComm(100, 100, "renamed")
	tb.SetComm(101, 100, "thread-name") // a thread's name leaves the group alone
	if got := tb.Get(100).Comm; got != "renamed" {
		t.Errorf("comm %q, want renamed", got)
	}
	if got := tb.Ancestors(nil, tb.Get(100), 5); len(got) != 1 || got[0].TGID != 1 {
		t.Errorf("ancestors: got %v, want [init]", got)
	}
	gone, thread := tb.Exit(100, 100, 2_305_000_000)
	if thread || gone == nil || gone.Exe != "/bin/sleep" || gone.EntityID != child.EntityID {
		t.Errorf("exit: got %+v", gone)
	}
	if tb.Get(100) != nil || tb.Len() != 1 {
		t.Errorf("after exit: Get %v, Len %d; want gone, 1", tb.Get(100), tb.Len())
	}
	if d := gone.DurationNs(2_305_000_000, 1e9); d != 300_000_000 {
		t.Errorf("DurationNs %d, want 0.3 s from the fork event", d)
	}
}

func TestAmbiguousStart(t *testing.T) {
	tb := newTable(0)
	for _, tt := range []struct {
		mono  uint64
		ticks uint64
		amb   bool
	}{
		{2_005_000_000, 300, false},
		{2_000_100_000, 300, true}, // 100 µs after the tick: may be 299
		{2_009_999_999, 300, false},
	} {
		ticks, amb := tb.StartTicks(tt.mono)
		if ticks != tt.ticks || amb != tt.amb {
			t.Errorf("StartTicks(%d) = %d, %v; want %d, %v", tt.mono, ticks, amb, tt.ticks, tt.amb)
		}
	}
	tb.Seed(&Observed{PID: 1, StartTicks: 1})
	p, res := tb.Fork(1, 5, 5, 2_000_100_000)
	if !res.Ambiguous {
		t.Fatal("fork not ambiguous")
	}
	fixed := tb.SetStart(5, 299)
	if fixed.EntityID != "b00t:5:299" || p.EntityID != "b00t:5:300" {
		t.Errorf("SetStart: got %s (was %s)", fixed.EntityID, p.EntityID)
	}
}

func TestThreads(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 10, StartTicks: 5, Exe: "/bin/app"})
	for tid := uint32(11); tid <= 14; tid++ {
		p, res := tb.Fork(10, tid, 10, 1e9)
		if !res.Thread || p == nil || p.TGID != 10 {
			t.Fatalf("thread fork %d: got %+v %+v", tid, p, res)
		}
	}
	if s := tb.Stats(); s.Processes != 1 || s.Threads != 4 {
		t.Errorf("stats %+v, want 1 process, 4 threads", s)
	}
	if p := tb.Lookup(12); p == nil || p.TGID != 10 {
		t.Errorf("Lookup(12) = %+v, want group 10", p)
	}
	if p, thread := tb.Exit(12, 10, 2e9); !thread || p == nil || p.TGID != 10 {
		t.Errorf("thread exit: %+v %v", p, thread)
	}
	if tb.Len() != 4 {
		t.Errorf("Len %d after a thread exit, want 4", tb.Len())
	}
	// The leader exits first (pthread_exit, or exit_group with the
	// leader's exit reported first): the group lives while a thread the
	// table tracks does.
	if p, thread := tb.Exit(10, 10, 2e9); thread || p == nil || p.TGID != 10 {
		t.Errorf("leader exit: %+v %v", p, thread)
	}
	if tb.Get(10) == nil || tb.Len() != 4 {
		t.Errorf("after the leader's exit: group %v, Len %d; want the group kept, 4", tb.Get(10), tb.Len())
	}
	if p := tb.SetComm(11, 10, "worker"); p == nil || p.Exe != "/bin/app" || p.Seeded != true {
		t.Errorf("an event of a thread after the leader's exit: got %+v, want the group's entry", p)
	}
	tb.Exit(11, 10, 3e9)
	tb.Exit(13, 10, 3e9)
	if p, thread := tb.Exit(14, 10, 4e9); !thread || p == nil || p.Exe != "/bin/app" {
		t.Errorf("the last thread's exit: got %+v, want the group", p)
	}
	if tb.Len() != 0 || tb.Get(10) != nil {
		t.Errorf("Len %d after the last thread's exit, want 0", tb.Len())
	}
	// exit_group: exits of threads the table did not track follow the
	// group's end.
	if p, thread := tb.Exit(15, 10, 4e9); !thread || p == nil || p.Exe != "/bin/app" || !p.Exited || p.ExitNs != 4e9 {
		t.Errorf("thread exit after the group's end: got %+v, want the group's exited snapshot", p)
	}
	// A group the table tracks no thread of ends at its leader's exit.
	tb.Seed(&Observed{PID: 30, StartTicks: 5})
	if tb.Exit(30, 30, 5e9); tb.Get(30) != nil {
		t.Error("a group without threads outlived its leader's exit")
	}
	if p, res := tb.Fork(10, 20, 10, 1e9); p != nil || !res.Thread {
		t.Errorf("thread of an unknown group: got %+v %+v", p, res)
	}
}

func TestBoundEvictsLeastRecent(t *testing.T) {
	tb := newTable(4)
	for pid := uint32(1); pid <= 4; pid++ {
		tb.Seed(&Observed{PID: pid, StartTicks: 1})
	}
	tb.Update(1, 1, nil) // 1 is now the most recent; 2 the least
	tb.Fork(3, 5, 5, 1e9)
	if tb.Get(2) != nil || tb.Get(1) == nil || tb.Get(5) == nil || tb.Len() != 4 {
		t.Errorf("after a fork into a full table: 1 %v, 2 %v, 5 %v, Len %d; want 2 evicted", tb.Get(1) != nil, tb.Get(2) != nil, tb.Get(5) != nil, tb.Len())
	}
	if tb.Stats().Evicted != 1 {
		t.Errorf("Evicted %d, want 1", tb.Stats().Evicted)
	}
	// Threads count against the bound too.
	tb.Fork(5, 50, 5, 1e9)
	if tb.Len() > 4 {
		t.Errorf("Len %d, bound 4", tb.Len())
	}
}

func TestResync(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1})
	tb.Seed(&Observed{PID: 2, StartTicks: 2})
	tb.Seed(&Observed{PID: 3, StartTicks: 3})
	live := []Observed{
		{PID: 1, StartTicks: 1},
		{PID: 3, StartTicks: 99}, // pid 3 reused
		{PID: 4, StartTicks: 4, Exe: "/new"},
	}
	lost, absent, added := tb.Resync(live)
	pids := func(ps []*Process) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.EntityID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"b00t:3:3"}, pids(lost)); diff != "" {
		t.Errorf("lost (reused pid) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b00t:2:2"}, pids(absent)); diff != "" {
		t.Errorf("absent (-want +got):\n%s", diff)
	}
	// Absent entries stay until confirmed: an exit may still come.
	if tb.Get(2) == nil {
		t.Error("absent pid 2 removed before Confirm")
	}
	if got := tb.Confirm(absent[0]); got == nil || got.EntityID != "b00t:2:2" || tb.Get(2) != nil {
		t.Errorf("Confirm: got %+v, table still has 2: %v", got, tb.Get(2) != nil)
	}
	if got := tb.Confirm(absent[0]); got != nil {
		t.Errorf("second Confirm: got %+v, want nil", got)
	}
	if diff := cmp.Diff([]string{"b00t:3:99", "b00t:4:4"}, pids(added), cmp.Transformer("sort", sortStrings)); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if p := tb.Get(4); p == nil || !p.Seeded {
		t.Errorf("pid 4 after resync: %+v, want seeded", p)
	}
}

func sortStrings(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestExecGoneKeepsInherited(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/bin/sh", Comm: "sh", UID: 7, Cgroup: "/c", ContainerID: "x", PodUID: "p"})
	tb.Fork(1, 9, 9, 2e9)
	p := tb.Exec(9, 9, &Observed{Gone: true}, false)
	want := []string{FieldExe, FieldCmdline, FieldCwd, FieldComm}
	if p.Exe != "" || p.Comm != "" || p.PreviousExe != "/bin/sh" || p.UID != 7 || p.Cgroup != "/c" || p.ContainerID != "x" || p.PodUID != "p" ||
		!cmp.Equal(p.Missing, want) {
		t.Errorf("exec of a gone process: got %+v, want exe and comm missing and uid, cgroup, container, pod inherited", p)
	}
}

// FuzzTable feeds arbitrary event sequences: no panic, both bounds hold,
// every thread belongs to a live group, the lineage links are consistent
// (a parent holds its child in its list, a linked entry is held, live or
// remembered) and a parent or ancestor never started after its child.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 1, 1, 3, 2, 2, 4, 2, 2})
	f.Add([]byte("\x00\x01\x05\x05\x00\x05\x06\x05\x03\x05\x05\x03\x06\x05"))
	f.Add([]byte("\x00\x01\x02\x10\x00\x00\x02\x03\x20\x00\x03\x02\x02\x30\x00\x00\x01\x02\x40\x00\x02\x02\x03\x07\x03\x01"))
	f.Add([]byte("\x05\x01\x03\x05\x02\x01\x01\x02\x04\x03\x01\x01\x01\x02\x05\x03\x02\x02\x07\x02\x01\x08\x02\x09"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		const max, maxExited = 8, 4
		tb := New(Options{MaxEntries: max, MaxExited: maxExited, BootID: boot, BoottimeOffsetNs: 1_000_000_000, BootWallNs: 1e18})
		for len(ops) >= 3 {
			op, a, b := ops[0]%11, uint32(ops[1]%16), uint32(ops[2]%16)
			ops = ops[3:]
			var ts uint64
			if len(ops) >= 2 {
				ts = uint64(binary.LittleEndian.Uint16(ops)) * 1e5
			}
			switch op {
			case 0:
				tb.Fork(a, b, b, ts)
			case 1:
				tb.Fork(a, b, a, ts) // thread b of group a
			case 2:
				tb.Exec(a, a, &Observed{Exe: "x", Gone: b%2 == 0, PPID: b, StartTicks: ts / 1e7}, b%3 == 0)
			case 3:
				tb.Exit(a, b, ts)
			case 4:
				tb.SetUID(a, b, a, b, "u")
			case 5:
				tb.Seed(&Observed{PID: a, PPID: b, StartTicks: uint64(b) * 20, ReadNs: ts, Threads: []uint32{b, a + 1}, StartOnly: b%4 == 0})
			case 6:
				_, absent, _ := tb.Resync([]Observed{{PID: a, PPID: b, StartTicks: uint64(b), ReadNs: ts}})
				for _, p := range absent {
					tb.Confirm(p)
				}
			case 7:
				tb.Reparent(a, b)
			case 8:
				tb.SetStart(a, uint64(b)*30)
			case 9:
				tb.Remove(a)
			case 10:
				tb.SetComm(a, a, "c")
			}
			checkTable(t, tb, max, maxExited)
		}
	})
}

// checkTable checks the invariants FuzzTable names.
func checkTable(t *testing.T, tb *Table, max, maxExited int) {
	t.Helper()
	if tb.Len() > max {
		t.Fatalf("Len %d past the bound %d", tb.Len(), max)
	}
	if n := tb.leaves.Len() + tb.inner.Len(); n > maxExited || n != tb.Stats().Exited {
		t.Fatalf("%d remembered (Stats %d), bound %d", n, tb.Stats().Exited, maxExited)
	}
	for tid, g := range tb.threads {
		e, ok := tb.procs.Peek(g)
		if !ok {
			t.Fatalf("thread %d of group %d, which is not in the table", tid, g)
		}
		if !slices.Contains(e.threads, tid) {
			t.Fatalf("thread %d not in its group's list", tid)
		}
	}
	var held []*entry
	tb.procs.All(func(_ uint32, e *entry) bool {
		if e.state != stLive || tb.view(e).Exited {
			t.Fatalf("live entry %s in state %d, exited %v", e.cur.EntityID, e.state, e.cur.Exited)
		}
		held = append(held, e)
		return true
	})
	tb.leaves.All(func(k key, e *entry) bool {
		if e.state != stExited || !tb.view(e).Exited || e.child != nil || k != keyOf(e.cur) {
			t.Fatalf("remembered leaf %s: state %d, exited %v, has children %v", e.cur.EntityID, e.state, tb.view(e).Exited, e.child != nil)
		}
		held = append(held, e)
		return true
	})
	tb.inner.All(func(k key, e *entry) bool {
		if e.state != stExited || !tb.view(e).Exited || e.child == nil || k != keyOf(e.cur) {
			t.Fatalf("remembered parent %s: state %d, exited %v, has children %v", e.cur.EntityID, e.state, tb.view(e).Exited, e.child != nil)
		}
		held = append(held, e)
		return true
	})
	for g, e := range tb.last {
		if e.state != stExited || e.cur.TGID != g {
			t.Fatalf("last life of %d: %s in state %d", g, e.cur.EntityID, e.state)
		}
	}
	for _, e := range held {
		if pe := e.parent; pe != nil {
			if pe.state == stGone {
				t.Fatalf("%s links to a parent the table no longer holds: %s", e.cur.EntityID, pe.cur.EntityID)
			}
			if startedAfter(pe.cur, e.cur) {
				t.Fatalf("%s has a parent that started after it: %s", e.cur.EntityID, pe.cur.EntityID)
			}
			found := false
			for c := pe.child; c != nil; c = c.next {
				found = found || c == e
			}
			if !found {
				t.Fatalf("%s is not in its parent's children", e.cur.EntityID)
			}
		}
		for c := e.child; c != nil; c = c.next {
			if c.parent != e || c.state == stGone {
				t.Fatalf("child %s of %s: parent %p, state %d", c.cur.EntityID, e.cur.EntityID, c.parent, c.state)
			}
		}
		child := e.cur
		for _, a := range tb.Ancestors(nil, e.cur, max+maxExited+1) {
			if startedAfter(a, child) {
				t.Fatalf("ancestor %s started after %s", a.EntityID, child.EntityID)
			}
			child = a
		}
		if pa := tb.Parent(e.cur); pa != nil && startedAfter(pa, e.cur) {
			t.Fatalf("parent %s started after %s", pa.EntityID, e.cur.EntityID)
		}
		for _, c := range tb.Children(nil, e.cur) {
			if startedAfter(e.cur, c) {
				t.Fatalf("child %s started before its parent %s", c.EntityID, e.cur.EntityID)
			}
		}
	}
}

// TestForkReplaced: a fork of a pid the table still holds with another
// start means the process it held has ended with its exit lost: Fork
// returns it as Replaced. A fork of the process the table already holds
// (seeded from /proc by a resync before the fork event was applied)
// replaces nothing and keeps the seeded identity (sameLife): its read
// start is at most the tick the event gives, one below when the read's
// time is unknown, any number below when the read began after the event
// (a fork event the kernel sent late). On the code before (a one-tick
// tolerance either way, and the fork's own tick taken), the late fork of
// a read start two ticks below was Replaced (an exit_lost for a live
// process) and the one a tick below got a new entity id.
func TestForkReplaced(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	first, _ := tb.Fork(1, 100, 100, 2_005_000_000) // tick 300
	if _, res := tb.Fork(1, 100, 100, 7_005_000_000); res.Replaced != first {
		t.Errorf("pid 100 forked again 5 s later: Replaced %+v, want the first process", res.Replaced)
	}
	for _, tt := range []struct {
		name         string
		read, readNs uint64 // the seeded start and when it was read
		same         bool
	}{
		{"read a tick below, time unknown", 399, 0, true},
		{"read the same tick", 400, 0, true},
		{"read two ticks below, before the event", 398, 3_000_000_000, false},
		{"read two ticks below, after the event", 398, 3_100_000_000, true},
		{"read long before, after the event", 100, 3_100_000_000, true},
		{"read a tick above: a later process", 401, 3_100_000_000, false},
	} {
		tb := newTable(0)
		tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
		seeded := tb.Seed(&Observed{PID: 200, StartTicks: tt.read, ReadNs: tt.readNs, Exe: "/bin/sleep"})
		p, res := tb.Fork(1, 200, 200, 3_005_000_000) // tick 400
		switch {
		case tt.same && (res.Replaced != nil || !res.Known || p.EntityID != seeded.EntityID || p.Exe != "/bin/sleep" || p.ForkNs != 3_005_000_000):
			t.Errorf("%s: fork got %+v, %+v; want the seeded process kept (%s) with the fork's timestamp", tt.name, p, res, seeded.EntityID)
		case !tt.same && (res.Replaced != seeded || res.Known || p.StartTicks != 400):
			t.Errorf("%s: fork got %+v, %+v; want the seeded process replaced", tt.name, p, res)
		}
	}
	if _, res := tb.Fork(1, 300, 300, 3_005_000_000); res.Replaced != nil {
		t.Errorf("a new pid: Replaced %+v, want none", res.Replaced)
	}
}

// TestPruneThreads: PruneThreads removes exactly the group's threads live
// does not hold; DropThread removes one.
func TestPruneThreads(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1})
	tb.Seed(&Observed{PID: 50, StartTicks: 1})
	for _, tid := range []uint32{2, 3, 4} {
		tb.Fork(1, tid, 1, 0)
	}
	tb.Fork(50, 51, 50, 0)
	if got := tb.ThreadGroups(); len(got) != 2 {
		t.Errorf("ThreadGroups %v, want 1 and 50", got)
	}
	if n := tb.PruneThreads(1, func(tid uint32) bool { return tid == 3 }); n != 2 {
		t.Errorf("pruned %d, want 2", n)
	}
	tb.DropThread(51)
	var left []uint32
	tb.Threads(func(tid, _ uint32) bool { left = append(left, tid); return true })
	if len(left) != 1 || left[0] != 3 || tb.Len() != 3 {
		t.Errorf("threads left %v, Len %d; want [3], 3", left, tb.Len())
	}
}

// TestExecKeepsCreds: an exec of a known process takes its image from the
// read and keeps the table's uids, gids and user (the read has none), and
// the marks of fields the read does not cover; the image's marks are the
// read's.
func TestExecKeepsCreds(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 7, StartTicks: 1, Exe: "/bin/sh", Cwd: "/x", UID: 1000, EUID: 1000, GID: 100, EGID: 100, User: "alice",
		Missing: []string{FieldParent, FieldCwd}})
	p := tb.Exec(7, 7, &Observed{Exe: "/bin/sleep", Cmdline: []string{"sleep"}, Comm: "sleep", Missing: []string{FieldExe}}, false)
	if p.UID != 1000 || p.EUID != 1000 || p.GID != 100 || p.EGID != 100 || p.User != "alice" {
		t.Errorf("creds after exec: %+v, want the table's", p)
	}
	if p.Exe != "/bin/sleep" || p.Cwd != "" || !slices.Equal(p.Missing, []string{FieldParent, FieldExe}) {
		t.Errorf("image after exec: exe %q cwd %q missing %v; want the read's, with parent still missing", p.Exe, p.Cwd, p.Missing)
	}
}

// TestResetKeepsCounts: Reset empties the table but keeps the counts that
// only grow, so a counter read from them never falls back.
func TestResetKeepsCounts(t *testing.T) {
	tb := newTable(4)
	for pid := uint32(10); pid < 20; pid++ {
		tb.Seed(&Observed{PID: pid, StartTicks: uint64(pid)})
	}
	before := tb.Stats()
	if before.Evicted == 0 {
		t.Fatal("10 processes in a table of 4 evicted none")
	}
	tb.Reset(Options{MaxEntries: 4, BootID: boot})
	got := tb.Stats()
	want := Stats{Evicted: before.Evicted, ThreadsDropped: before.ThreadsDropped, Forgotten: before.Forgotten}
	if diff := cmp.Diff(want, got); diff != "" || tb.Len() != 0 || tb.Get(19) != nil {
		t.Errorf("after Reset: len %d, stats (-want +got):\n%s", tb.Len(), diff)
	}
}
