package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// lineageLine is the part of an event line about lineage.
type lineageLine struct {
	Proc      map[string]any   `json:"proc"`
	Process   map[string]any   `json:"process"`
	Parent    map[string]any   `json:"parent"`
	Ancestors []map[string]any `json:"ancestors"`
	raw       string
}

// monoNs is CLOCK_MONOTONIC now, the clock of proc.timestamp_ns: lines
// stamped before a test's processes started are of earlier holders of
// their pids (pids come round fast when other work churns them).
func monoNs(t *testing.T) float64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return float64(ts.Nano())
}

// after reports whether l is stamped at or after ns.
func (l lineageLine) after(ns float64) bool {
	ts, _ := l.Proc["timestamp_ns"].(float64)
	return ts >= ns
}

func lineageLines(t *testing.T, path string) []lineageLine {
	t.Helper()
	var out []lineageLine
	for _, l := range readLines(t, path) {
		var ll lineageLine
		if err := json.Unmarshal([]byte(l.raw), &ll); err != nil {
			t.Fatal(err)
		}
		ll.raw = l.raw
		out = append(out, ll)
	}
	return out
}

// forceNextPid makes the kernel's next pid want (through ns_last_pid) and
// starts argv on it; nil when another process took it each time.
func forceNextPid(t *testing.T, want int, argv ...string) *exec.Cmd {
	t.Helper()
	for try := 0; try < 50; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
			t.Skipf("cannot set ns_last_pid: %v", err)
		}
		c := exec.Command(argv[0], argv[1:]...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if c.Process.Pid == want {
			return c
		}
		c.Process.Kill()
		c.Wait()
	}
	return nil
}

// TestOrphanAfterPidReuse (issue 20): P starts C and exits; P's pid is
// then taken by a newcomer N (forced through ns_last_pid), which started
// after C. C's later execs name P as their parent, as it was, marked
// exited; C's exit names the reaper the kernel gives in the exit event;
// N is never C's parent or ancestor. On the code before, both named N
// (the parent was whatever held the pid).
func TestOrphanAfterPidReuse(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [fork, exec, exit]
    enrich: true
    ancestors: 3
    sinks: [out]`, ""))
	out := filepath.Join(p.dir, "out/events.jsonl")
	fifo := filepath.Join(t.TempDir(), "go")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// C runs sh, which waits for a line on the FIFO, then execs sleep.
	released := false
	release := func() {
		// Once C has the FIFO open for reading, the line waits for it.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == nil {
				f.WriteString("go\n")
				f.Close()
				released = true
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("the orphan never opened the FIFO: %v", err)
				return
			}
		}
	}
	t.Cleanup(func() {
		if !released {
			release()
		}
	})
	begin := monoNs(t)
	parent := exec.Command("/bin/sh", "-c", `/bin/sh -c "read x <`+fifo+`; exec /bin/sleep 0.2" >/dev/null 2>&1 & echo $!`)
	got, err := parent.Output()
	if err != nil {
		t.Fatal(err)
	}
	pPid := parent.Process.Pid
	cPid, err := strconv.Atoi(strings.TrimSpace(string(got)))
	if err != nil {
		t.Fatalf("child pid %q: %v", got, err)
	}
	// N must start clock ticks after C (start times are compared to the
	// tick, 10 ms).
	time.Sleep(30 * time.Millisecond)
	n := forceNextPid(t, pPid, "sleep", "3.25")
	if n == nil {
		release()
		t.Skip("could not reuse the parent's pid (another process took it each time)")
	}
	defer func() { n.Process.Kill(); n.Wait() }()
	release()

	var pID, nID string
	var cExecs []lineageLine
	var cExit *lineageLine
	cntest.WaitFor(t, 10*time.Second, "the orphan's exit and the newcomer's exec", func() bool {
		pID, nID, cExecs, cExit = "", "", nil, nil
		for _, l := range lineageLines(t, out) {
			if l.Proc == nil || l.Process == nil || !l.after(begin) {
				continue
			}
			switch {
			case cExit != nil: // C's pid may come round after its exit
			case l.Proc["event"] == "fork" && l.Proc["child_pid"] == float64(pPid) && pID == "":
				pID, _ = l.Process["entity_id"].(string)
			case l.Proc["event"] == "exec" && l.Proc["pid"] == float64(pPid) && fmt.Sprint(l.Process["cmdline"]) == "[sleep 3.25]":
				nID, _ = l.Process["entity_id"].(string)
			case l.Proc["event"] == "exec" && l.Proc["pid"] == float64(cPid):
				cExecs = append(cExecs, l)
			case l.Proc["event"] == "exit" && l.Proc["pid"] == float64(cPid):
				cExit = &l
			}
		}
		return pID != "" && nID != "" && len(cExecs) == 2 && cExit != nil
	})
	if pID == nID {
		t.Fatalf("P and N share entity id %s", pID)
	}
	names := func(l lineageLine, id string) bool {
		if l.Parent["entity_id"] == id {
			return true
		}
		for _, a := range l.Ancestors {
			if a["entity_id"] == id {
				return true
			}
		}
		return false
	}
	for _, l := range append(cExecs, *cExit) {
		if names(l, nID) {
			t.Errorf("the orphan's %s names the newcomer %s (started after it) as parent or ancestor: %s", l.Proc["event"], nID, l.raw)
		}
	}
	// Its first exec (sh) may come before P's exit; the sleep's comes
	// after N's fork.
	for _, l := range cExecs {
		if l.Parent["entity_id"] != pID || l.Process["ppid"] != float64(pPid) {
			t.Errorf("the orphan's exec: parent %v, ppid %v; want P %s, ppid %d", l.Parent, l.Process["ppid"], pID, pPid)
		}
	}
	if l := cExecs[1]; fmt.Sprint(l.Process["cmdline"]) != "[/bin/sleep 0.2]" || l.Parent["exited"] != true {
		t.Errorf("the orphan's exec of sleep: %s; want its parent P marked exited", l.raw)
	}
	reaper := cExit.Proc["parent_tgid"]
	if reaper == nil || reaper == float64(pPid) {
		t.Fatalf("the orphan's exit event names parent %v", reaper)
	}
	if cExit.Process["ppid"] != reaper || cExit.Parent == nil || cExit.Parent["pid"] != reaper || cExit.Parent["exited"] != nil {
		t.Errorf("the orphan's exit: ppid %v, parent %v; want the reaper %v the event names, live", cExit.Process["ppid"], cExit.Parent, reaper)
	}
	p.stop()
}

// leaderExitHelper is the process TestLeaderExitsFirst starts (the test
// binary, run with CNBRIDGED_TEST_HELPER=leader-exit). On a first line on
// stdin (once the daemon has described its exec: a zombie leader's /proc
// shows no image) its leader thread exits alone (SYS_EXIT, as
// pthread_exit does), leaving the group to its other threads; on a second
// line one of them renames itself (a comm event of a thread, not the
// leader) and then the process exits (exit_group).
func leaderExitHelper() {
	runtime.LockOSThread() // init runs on the leader thread: keep main there
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	go func() {
		runtime.LockOSThread()
		in.ReadString('\n')
		os.WriteFile("/proc/thread-self/comm", []byte("leaderless"), 0)
		os.Exit(0)
	}()
	syscall.Syscall(syscall.SYS_EXIT, 0, 0, 0)
}

func init() {
	if os.Getenv("CNBRIDGED_TEST_HELPER") == "leader-exit" {
		leaderExitHelper()
	}
}

// TestLeaderExitsFirst (issue 20): a process whose leader thread exits
// before its other threads keeps its entry: a later event of another
// thread is described from the table (the same entity id and image, not
// seeded, nothing missing), and its threads' exits carry exit_signal -1
// (the kernel's -1, sent unsigned). On the code before, the leader's
// exit dropped the group, the thread's event re-seeded it from the
// zombie leader's /proc entry (no exe: "missing", "seeded"), and thread
// exits carried 4294967295.
func TestLeaderExitsFirst(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [exec, exit, comm]
    enrich: true
    sinks: [out]`, ""))
	out := filepath.Join(p.dir, "out/events.jsonl")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, _ = filepath.EvalSymlinks(self)
	begin := monoNs(t)
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CNBRIDGED_TEST_HELPER=leader-exit")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := float64(cmd.Process.Pid)
	end := math.Inf(1) // once the helper has been reaped, its pid may come round
	ofGroup := func() []lineageLine {
		var ls []lineageLine
		for _, l := range lineageLines(t, out) {
			if l.Proc != nil && l.Proc["tgid"] == pid && l.after(begin) && !l.after(end) {
				ls = append(ls, l)
			}
		}
		return ls
	}
	cntest.WaitFor(t, 10*time.Second, "the helper's exec", func() bool {
		return slices.ContainsFunc(ofGroup(), func(l lineageLine) bool { return l.Proc["event"] == "exec" })
	})
	stdin.Write([]byte("\n"))
	cntest.WaitFor(t, 10*time.Second, "the helper's leader exit", func() bool {
		return slices.ContainsFunc(ofGroup(), func(l lineageLine) bool { return l.Proc["event"] == "exit" && l.Proc["pid"] == pid })
	})
	stdin.Write([]byte("\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	end = monoNs(t)
	var id any
	var comm *lineageLine
	var threadExits []lineageLine
	cntest.WaitFor(t, 10*time.Second, "the thread's comm event and the threads' exits", func() bool {
		id, comm, threadExits = nil, nil, nil
		for _, l := range ofGroup() {
			switch {
			case l.Proc["event"] == "exec" && id == nil:
				id = l.Process["entity_id"]
			case l.Proc["event"] == "comm" && l.Proc["comm"] == "leaderless":
				comm = &l
			case l.Proc["event"] == "exit" && l.Proc["thread"] == true:
				threadExits = append(threadExits, l)
			}
		}
		return id != nil && comm != nil && len(threadExits) > 0
	})
	if comm.Proc["pid"] == pid {
		t.Fatalf("the comm event is the leader's: %s", comm.raw)
	}
	check := func(l lineageLine) {
		t.Helper()
		if l.Process["entity_id"] != id || l.Process["exe"] != self || l.Process["seeded"] != nil || l.Process["missing"] != nil {
			t.Errorf("%s after the leader's exit: %s; want the entry of the exec (%v, exe %s), not seeded, nothing missing", l.Proc["event"], l.raw, id, self)
		}
	}
	check(*comm)
	for _, l := range threadExits {
		check(l)
		if !strings.Contains(l.raw, `"exit_signal":-1`) {
			t.Errorf("thread exit: %s; want exit_signal -1", l.raw)
		}
	}
	p.stop()
}
