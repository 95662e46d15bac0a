package proctable

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const boot = "b00t"

func newTable(max int) *Table {
	return New(Options{MaxEntries: max, BootID: boot, TickNs: 10_000_000, BoottimeOffsetNs: 1_000_000_000, BootWallNs: 1e18})
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
	gone, thread := tb.Exit(100, 100)
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
	if p, thread := tb.Exit(12, 10); !thread || p == nil || p.TGID != 10 {
		t.Errorf("thread exit: %+v %v", p, thread)
	}
	if tb.Len() != 4 {
		t.Errorf("Len %d after a thread exit, want 4", tb.Len())
	}
	tb.Exit(10, 10) // the leader's exit ends the group
	if tb.Len() != 0 {
		t.Errorf("Len %d after the leader's exit, want 0", tb.Len())
	}
	// exit_group: the other threads' exits may follow the leader's.
	if p, thread := tb.Exit(13, 10); !thread || p == nil || p.Exe != "/bin/app" {
		t.Errorf("thread exit after the leader's: got %+v, want the group's last snapshot", p)
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

// FuzzTable feeds arbitrary event sequences: no panic, the bound holds,
// every thread belongs to a group in the table.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 1, 1, 3, 2, 2, 4, 2, 2})
	f.Add([]byte("\x00\x01\x05\x05\x00\x05\x06\x05\x03\x05\x05\x03\x06\x05"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		const max = 8
		tb := newTable(max)
		for len(ops) >= 3 {
			op, a, b := ops[0]%7, uint32(ops[1]%16), uint32(ops[2]%16)
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
				tb.Exec(a, a, &Observed{Exe: "x", Gone: b%2 == 0}, b%3 == 0)
			case 3:
				tb.Exit(a, b)
			case 4:
				tb.SetUID(a, b, a, b, "u")
			case 5:
				tb.Seed(&Observed{PID: a, StartTicks: uint64(b)})
			case 6:
				_, absent, _ := tb.Resync([]Observed{{PID: a, StartTicks: uint64(b)}})
				for _, p := range absent {
					tb.Confirm(p)
				}
			}
			if tb.Len() > max {
				t.Fatalf("Len %d past the bound %d", tb.Len(), max)
			}
			for tid, g := range tb.threads {
				if tb.Get(g) == nil {
					t.Fatalf("thread %d of group %d, which is not in the table", tid, g)
				}
			}
			tb.All(func(p *Process) bool {
				tb.Ancestors(nil, p, 100)
				return true
			})
		}
	})
}

// TestForkReplaced: a fork of a pid the table still holds with another
// start means the process it held has ended with its exit lost: Fork
// returns it as Replaced. A fork of the process the table already holds
// (seeded from /proc by a resync before the fork event was applied, the
// tick one apart at most) replaces nothing.
func TestForkReplaced(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	first, _ := tb.Fork(1, 100, 100, 2_005_000_000) // tick 300
	if _, res := tb.Fork(1, 100, 100, 7_005_000_000); res.Replaced != first {
		t.Errorf("pid 100 forked again 5 s later: Replaced %+v, want the first process", res.Replaced)
	}
	tb.Seed(&Observed{PID: 200, StartTicks: 401, Exe: "/bin/sleep"}) // seeded by a resync
	if p, res := tb.Fork(1, 200, 200, 3_005_000_000); res.Replaced != nil || p.StartTicks != 400 {
		t.Errorf("the late fork of the seeded pid 200: Replaced %+v, start %d; want none, 400", res.Replaced, p.StartTicks)
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
