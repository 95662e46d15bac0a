package enrich

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// fakeProc returns a proc root that holds process 1 only.
func fakeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"comm":    "init\n",
		"cmdline": "init\x00",
		"status":  "Name:\tinit\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"cgroup":  "0::/\n",
		"stat":    "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 5 100 1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/bin/true", filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	return root
}

// midTick returns a CLOCK_MONOTONIC timestamp near ns in the middle of a
// clock tick of the table's boot clock, so that a fork stamped with it
// needs no /proc read for its start.
func midTick(e *Enricher, ns int64) uint64 {
	boot := ns + e.off
	return uint64(boot/1e7*1e7 + 5e6 - e.off)
}

func forkOf(parent, child uint32, ts uint64) cnmsg.ProcEvent {
	return cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: parent, ParentTGID: parent, ChildPID: child, ChildTGID: child, TimestampNs: ts}
}

func lostPIDs(ps []*proctable.Process) []uint32 {
	var out []uint32
	for _, p := range ps {
		out = append(out, p.TGID)
	}
	return out
}

// TestResyncLateFork: a fork stamped before a resync's scan, applied after
// it (the enricher was behind), of a child the scan did not list, is of a
// process that had ended: it is reported exit_lost once the events after
// the scan are applied, and does not stay in the table. A fork stamped
// after the scan is of a live process and stays. On the code before this
// test the late child stayed in the table for good (TestProcessStormResync
// saw hundreds of them).
func TestResyncLateFork(t *testing.T) {
	e := New(Options{MaxEntries: 64, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	wakes := 0
	e.SetWake(func() { wakes++ })
	e.resyncNow() // after a loss; the scan lists pid 1 only
	pool := event.NewPool()
	before, after := midTick(e, e.scanAt-1e9), midTick(e, e.absentAt+2e8)

	b := procBatch(pool, forkOf(1, 500, before))
	enrichNow(e, b)
	b.Release()
	b = procBatch(pool, forkOf(1, 600, after))
	enrichNow(e, b)
	b.Release()

	if got := lostPIDs(e.TakeLost()); len(got) != 1 || got[0] != 500 {
		t.Errorf("exit_lost %v, want [500]: the child forked before the scan and missing from it", got)
	}
	if e.table.Get(500) != nil {
		t.Error("pid 500 is still in the table")
	}
	if wakes != 1 {
		t.Errorf("the reader was woken %d times for the exit_lost record, want 1", wakes)
	}
	if e.table.Get(600) == nil {
		t.Error("pid 600, forked after the scan, is not in the table")
	}
}

// TestResyncWaitsForQueuedExit: a process a resync found gone from /proc
// whose exit event the reader has handled but the enricher has not yet
// applied (it waits in the enricher's queue) is not reported exit_lost:
// confirmation waits for the enricher's own progress past the scan, not
// the reader's. On the code before this test it was reported lost, and
// then its real exit came too.
func TestResyncWaitsForQueuedExit(t *testing.T) {
	e := New(Options{MaxEntries: 64, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	pool := event.NewPool()
	b := procBatch(pool, forkOf(1, 700, midTick(e, monotonicNs()-2e9)))
	enrichNow(e, b)
	b.Release()

	e.resyncNow() // 700 is not in the fake /proc: absent
	before, after := midTick(e, e.scanAt-1e9), midTick(e, e.absentAt+2e8)
	// The reader has handled events well past the scan: 700's exit among
	// them, queued for the enricher.
	e.seenTs.Store(uint64(e.absentAt + 1e9))
	exit := procBatch(pool, cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 700, TGID: 700, TimestampNs: before + 1e6})
	e.Offer(exit, true, nil)

	b = procBatch(pool, cnmsg.ProcEvent{What: cnmsg.ProcComm, PID: 1, TGID: 1, TimestampNs: before})
	enrichNow(e, b)
	b.Release()
	if got := e.TakeLost(); len(got) != 0 {
		t.Fatalf("exit_lost %v before the queued exit was applied, want none", lostPIDs(got))
	}
	e.take(<-e.q)
	exit.WaitEnriched()
	if r := exit.Records[0]; r.Enriched == nil || r.Enriched.Process == nil || r.Enriched.Process.TGID != 700 {
		t.Errorf("the exit of 700: got %+v, want it described from the table", r.Enriched)
	}
	exit.Release()
	b = procBatch(pool, forkOf(1, 800, after))
	enrichNow(e, b)
	b.Release()
	if got := e.TakeLost(); len(got) != 0 {
		t.Errorf("exit_lost %v, want none: 700's exit came", lostPIDs(got))
	}
}

// TestForkOverLostExit: a fork of a pid the table still holds for another
// process (its exit event was lost, and its pid has come round again)
// reports that process exit_lost. On the code before this test the fork
// overwrote it silently: no record of its end at all.
func TestForkOverLostExit(t *testing.T) {
	e := New(Options{MaxEntries: 64, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	pool := event.NewPool()
	now := monotonicNs()
	b := procBatch(pool, forkOf(1, 900, midTick(e, now-3e9)))
	enrichNow(e, b)
	first := b.Records[0].Enriched.Process
	b.Release()
	b = procBatch(pool, forkOf(1, 900, midTick(e, now-1e9))) // its exit was lost
	enrichNow(e, b)
	second := b.Records[0].Enriched.Process
	b.Release()
	got := e.TakeLost()
	if len(got) != 1 || got[0].EntityID != first.EntityID {
		t.Fatalf("exit_lost %v, want the first pid 900 (%s)", lostPIDs(got), first.EntityID)
	}
	if cur := e.table.Get(900); cur == nil || cur.EntityID != second.EntityID || second.EntityID == first.EntityID {
		t.Errorf("table holds %+v, want the second pid 900 (%s)", cur, second.EntityID)
	}
}

// TestResyncThreads: after a loss, the resync drops the threads whose
// group's task directory no longer lists them (their exits were lost),
// keeps the live ones, and a thread fork stamped before the scan but
// applied after it stays only if /proc still lists the thread. On the
// code before this test dead threads stayed in the table
// (TestProcessStormResync saw two, of another test's process).
func TestResyncThreads(t *testing.T) {
	root := fakeProc(t)
	for _, tid := range []string{"1", "2", "5"} {
		if err := os.MkdirAll(filepath.Join(root, "1", "task", tid), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Options{MaxEntries: 64, ProcRoot: root}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	pool := event.NewPool()
	thread := func(tid uint32, ts uint64) cnmsg.ProcEvent {
		return cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 1, ParentTGID: 1, ChildPID: tid, ChildTGID: 1, TimestampNs: ts}
	}
	early := midTick(e, monotonicNs()-2e9)
	b := procBatch(pool, thread(2, early), thread(3, early))
	enrichNow(e, b)
	b.Release()
	e.resyncNow() // thread 3 is not in /proc/1/task
	tids := func() map[uint32]bool {
		m := map[uint32]bool{}
		e.table.Threads(func(tid, _ uint32) bool { m[tid] = true; return true })
		return m
	}
	if got := tids(); !got[2] || got[3] {
		t.Errorf("threads after the resync: %v, want 2 and not 3", got)
	}
	before := midTick(e, e.scanAt-1e9)
	b = procBatch(pool, thread(4, before), thread(5, before)) // late: 4 has ended, 5 lives
	enrichNow(e, b)
	b.Release()
	if got := tids(); got[4] || !got[5] {
		t.Errorf("threads after late forks: %v, want 5 and not 4", got)
	}
}

// addFakeProc adds process pid (parent ppid, started at tick ticks) to a
// fake proc root.
func addFakeProc(t *testing.T, root string, pid, ppid uint32, ticks int64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(pid)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"comm":    "worker\n",
		"cmdline": "worker\x00",
		"status":  fmt.Sprintf("Name:\tworker\nPPid:\t%d\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", ppid),
		"cgroup":  "0::/\n",
		"stat":    fmt.Sprintf("%d (worker) S %d %d %d 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 %d 100 1\n", pid, ppid, pid, pid, ticks),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/bin/true", filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
}

// TestResyncDelayedForks (issue 20): fork events the kernel sent more
// than a tick after the tasks started (their timestamps give a start two
// ticks too high, past the window that has the start read from /proc).
// One is applied before a resync, whose scan reads the true start; one is
// applied after the resync seeded its process (the enricher was behind).
// Neither live process is reported exit_lost and neither gets a new
// entity id. On the code before (starts compared exactly by Resync, to a
// tick by Fork), both were reported exit_lost and given new ids.
func TestResyncDelayedForks(t *testing.T) {
	root := fakeProc(t)
	e := New(Options{MaxEntries: 64, ProcRoot: root}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	pool := event.NewPool()
	now := monotonicNs()
	tickOf := func(mono int64) int64 { return (mono + e.off) / 1e7 }
	startA, startB := now-3e9, now-2e9
	addFakeProc(t, root, 500, 1, tickOf(startA))
	addFakeProc(t, root, 600, 1, tickOf(startB))

	b := procBatch(pool, forkOf(1, 500, midTick(e, startA+20e6)))
	enrichNow(e, b)
	idA := b.Records[0].Enriched.Process.EntityID
	b.Release()
	if want := e.table.EntityID(500, uint64(tickOf(startA)+2)); idA != want {
		t.Fatalf("the delayed fork's id %s, want %s (two ticks late)", idA, want)
	}
	e.resyncNow()
	seededB := e.table.Get(600)
	if seededB == nil || seededB.StartTicks != uint64(tickOf(startB)) {
		t.Fatalf("the resync did not seed pid 600 with its start: %+v", seededB)
	}
	b = procBatch(pool, forkOf(1, 600, midTick(e, startB+20e6))) // stamped before the scan
	enrichNow(e, b)
	if got := b.Records[0].Enriched.Process.EntityID; got != seededB.EntityID {
		t.Errorf("the late fork of pid 600 describes %s, want the seeded %s", got, seededB.EntityID)
	}
	b.Release()
	b = procBatch(pool, forkOf(1, 700, midTick(e, e.absentAt+2e8))) // past the confirmation
	enrichNow(e, b)
	b.Release()
	if got := e.TakeLost(); len(got) != 0 {
		t.Errorf("exit_lost %v, want none: both processes live", lostPIDs(got))
	}
	if p := e.table.Get(500); p == nil || p.EntityID != idA {
		t.Errorf("pid 500 after the resync: %+v, want %s", p, idA)
	}
	if p := e.table.Get(600); p == nil || p.EntityID != seededB.EntityID {
		t.Errorf("pid 600 after its late fork: %+v, want %s", p, seededB.EntityID)
	}
}

// TestResyncReusedPid: a resync that finds a pid the table holds taken by
// another process reports the held one exit_lost and describes the new
// one from a full read of /proc (its image, its parent). On the code
// before, the new process was seeded from the start-only read the resync
// makes of known pids: no exe, no comm, no parent.
func TestResyncReusedPid(t *testing.T) {
	root := fakeProc(t)
	e := New(Options{MaxEntries: 64, ProcRoot: root}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	e.seed()
	pool := event.NewPool()
	now := monotonicNs()
	b := procBatch(pool, forkOf(1, 800, midTick(e, now-3e9)))
	enrichNow(e, b)
	old := b.Records[0].Enriched.Process
	b.Release()
	addFakeProc(t, root, 800, 1, (now-1e9+e.off)/1e7) // a later process on pid 800
	e.resyncNow()
	if got := e.TakeLost(); len(got) != 1 || got[0].EntityID != old.EntityID {
		t.Errorf("exit_lost %v, want the first pid 800", lostPIDs(got))
	}
	p := e.table.Get(800)
	if p == nil || p.EntityID == old.EntityID || p.Exe != "/bin/true" && p.Exe != "/usr/bin/true" || p.Comm != "worker" || p.PPID != 1 || !p.Seeded {
		t.Fatalf("the new pid 800: %+v, want it read in full (exe /bin/true, comm worker, ppid 1), seeded", p)
	}
	if pa := e.table.Parent(p); pa == nil || pa.TGID != 1 {
		t.Errorf("parent of the new pid 800: %+v, want pid 1", pa)
	}
}
