package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// stormProcesses is the size of TestProcessStormResync's storm: the
// 100 000 the issue asks for. A process made by exec.Command costs about
// 1 ms here, but a shell subshell (a fork that exits at once, no exec)
// about 0.25 ms, so 4 shells make 100 000 in 9-12 s on this 2-core VM
// under the other engineers' load, and the whole test takes 17-18 s,
// inside its budget of a minute (pids wrap about three times at pid_max
// 32768).
const stormProcesses = 100000

// TestProcessStormResync (issue 13 item 7): a storm of short-lived
// processes under a daemon with the smallest receive buffer the config
// accepts (64 KiB) and a small process table, stopped (SIGSTOP) during
// the storm so that events are lost for certain. While the
// daemon is stopped, some long-lived processes end (their exits are lost)
// and others start (their forks are lost). Afterwards the table must have
// stayed within process_table.max_entries, and, once resynchronized, agree
// with /proc: every live process known with its start, no entry for a
// process or thread that has gone (read through /debug/proctable).
func TestProcessStormResync(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 100 000 processes: the full run (go test without -short) has it")
	}
	cntest.NeedRoot(t, rootReason)
	// The table's bound: above the processes and threads this machine
	// runs (a few hundred), below the horde's.
	const maxEntries, hordeSize = 1024, 1500
	p := startDaemon(t, fmt.Sprintf(`
listener:
  groups: [1]
  receive_buffer_bytes: 65536
process_table:
  max_entries: %d
sinks:
  out:
    type: file
    path: %%DIR%%/out/events.jsonl
routes:
  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out]
`, maxEntries))
	view := func() bridge.TableView {
		t.Helper()
		resp, err := http.Get("http://" + p.metrics + "/debug/proctable")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v bridge.TableView
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("/debug/proctable: %v", err)
		}
		return v
	}
	sleeps := func(n int) []*exec.Cmd {
		cs := make([]*exec.Cmd, n)
		for i := range cs {
			cs[i] = exec.Command("sleep", "120")
			if err := cs[i].Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cs[i].Process.Kill(); cs[i].Wait() })
		}
		return cs
	}
	early := sleeps(10)

	// The storm: 4 shells, each forking subshells that exit at once.
	const shells = 4
	storm := make([]*exec.Cmd, shells)
	start := time.Now()
	for i := range storm {
		script := "i=0; while [ $i -lt " + strconv.Itoa(stormProcesses/shells) + " ]; do ( : ); i=$((i+1)); done"
		storm[i] = exec.Command("/bin/sh", "-c", script)
		if err := storm[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// The bound is sampled while the storm runs.
	peak := 0.0
	done := make(chan error, shells)
	for _, c := range storm {
		go func(c *exec.Cmd) { done <- c.Wait() }(c)
	}
	sample := func() {
		if n := p.metric("cnbridged_proctable_entries", nil); n > peak {
			peak = n
		}
	}
	// Stop the daemon while a burst of subshells overflows its 64 KiB
	// buffer for certain. Meanwhile half the early sleeps end (their exits
	// are lost) and new ones start (their forks and execs are lost).
	paused := false
	stopWindow := func() {
		paused = true
		p.pause()
		if out, err := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do ( : ); i=$((i+1)); done").CombinedOutput(); err != nil {
			t.Fatalf("burst: %v\n%s", err, out)
		}
		for _, c := range early[:5] {
			c.Process.Kill()
			c.Wait()
		}
		early = append(early, sleeps(5)...)
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
	pause := time.After(500 * time.Millisecond)
	for running := shells; running > 0; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("storm shell: %v", err)
			}
			running--
		case <-pause:
			stopWindow()
		case <-time.After(100 * time.Millisecond):
			sample()
		}
	}
	if !paused { // a storm faster than the pause
		stopWindow()
	}
	took := time.Since(start)
	sample()
	if got := p.metric("cnbridged_socket_drops_total", nil) + p.metric("cnbridged_messages_lost_total", nil); got == 0 {
		t.Fatalf("no loss: the test did not force any")
	}

	// The storm's processes are gone in a millisecond, so few are in the
	// table at once. To reach the bound, a horde of more processes than
	// max_entries lives through a second stop of the daemon: their forks
	// and execs are seen, their exits lost, and the table must evict.
	horde := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt "+strconv.Itoa(hordeSize)+
		" ]; do sleep 4 & i=$((i+1)); done; echo spawned; wait")
	hordeOut, err := horde.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := horde.Start(); err != nil {
		t.Fatal(err)
	}
	spawned := make(chan struct{})
	go func() {
		b := make([]byte, 16)
		hordeOut.Read(b)
		close(spawned)
	}()
	for waiting := true; waiting; {
		select {
		case <-spawned:
			waiting = false
		case <-time.After(50 * time.Millisecond):
			sample()
		}
	}
	cntest.WaitFor(t, 10*time.Second, "the horde's execs to be handled", func() bool {
		sample()
		return p.metric("cnbridged_proctable_evictions_total", nil) > 0
	})
	p.pause()
	horde.Wait() // every sleep has ended, its exit lost
	p.cmd.Process.Signal(syscall.SIGCONT)
	if peak > maxEntries {
		t.Errorf("proctable_entries peaked at %v, above max_entries %d", peak, maxEntries)
	}

	// Consistency with /proc, once the resync after the loss has run and
	// its unconfirmed absences have been settled. Other tests' processes
	// come and go meanwhile, so one sample is judged only on processes
	// that /proc shows both before and after it, and gone from /proc both
	// before and after it; it is retried until one agrees.
	var problems []string
	var v bridge.TableView
	ok := false
	deadline := time.Now().Add(20 * time.Second)
	for !ok && time.Now().Before(deadline) {
		exec.Command("/bin/true").Run() // events after the loss carry the resync out
		before := scanProc(t)
		v = view()
		after := scanProc(t)
		problems = tableProblems(v, before, after)
		ok = len(problems) == 0
		if !ok {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ok {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		t.Errorf("the table disagrees with /proc 20 s after the loss:\n%s", bytes.Join(func() [][]byte {
			var b [][]byte
			for _, s := range problems {
				b = append(b, []byte(s))
			}
			return b
		}(), []byte("\n")))
	}
	if n := len(v.Processes) + len(v.Threads); n > maxEntries {
		t.Errorf("the table holds %d entries, above max_entries %d", n, maxEntries)
	}
	if got := p.metric("cnbridged_proctable_resyncs_total", nil); got < 1 {
		t.Errorf("resyncs_total %v, want at least 1", got)
	}
	t.Logf("%d processes in %v, then %d sleeps; peak table entries %v (max %d), evicted %d, resyncs %v, socket drops %v, seq losses %v, exit_lost %v, seeded %v",
		stormProcesses, took.Round(time.Millisecond), hordeSize, peak, maxEntries, v.Evicted,
		p.metric("cnbridged_proctable_resyncs_total", nil), p.metric("cnbridged_socket_drops_total", nil),
		p.metric("cnbridged_messages_lost_total", nil), p.metric("cnbridged_proctable_exit_lost_total", nil),
		p.metric("cnbridged_proctable_seeded_total", nil))
	p.stop()
}

// procTask is a thread group in /proc and its threads.
type procTask struct {
	start   uint64
	threads map[uint32]bool
}

// scanProc lists the processes in /proc with their start ticks and threads.
func scanProc(t *testing.T) map[uint32]procTask {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[uint32]procTask, len(ents))
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 20 {
			continue
		}
		start, _ := strconv.ParseUint(string(f[19]), 10, 64)
		pt := procTask{start: start, threads: map[uint32]bool{}}
		if ts, err := os.ReadDir("/proc/" + e.Name() + "/task"); err == nil {
			for _, te := range ts {
				if tid, err := strconv.ParseUint(te.Name(), 10, 32); err == nil && tid != pid {
					pt.threads[uint32(tid)] = true
				}
			}
		}
		m[uint32(pid)] = pt
	}
	return m
}

// tableProblems compares a table view with /proc scanned just before and
// just after it. A process /proc shows, with the same start, both times
// must be in the table with that start; a table process or thread /proc
// shows neither time has gone and must not be in the table.
func tableProblems(v bridge.TableView, before, after map[uint32]procTask) []string {
	var out []string
	table := make(map[uint32]uint64, len(v.Processes))
	for _, p := range v.Processes {
		table[p.PID] = p.StartTicks
	}
	for pid, b := range before {
		a, ok := after[pid]
		if !ok || a.start != b.start {
			continue
		}
		if st, ok := table[pid]; !ok {
			out = append(out, fmt.Sprintf("live pid %d (start %d) is not in the table", pid, b.start))
		} else if st != b.start {
			out = append(out, fmt.Sprintf("live pid %d started at %d; the table has it starting at %d", pid, b.start, st))
		}
	}
	for pid, st := range table {
		b, inB := before[pid]
		a, inA := after[pid]
		if (!inB || b.start != st) && (!inA || a.start != st) {
			out = append(out, fmt.Sprintf("pid %d (start %d) is in the table but not in /proc", pid, st))
		}
	}
	for _, th := range v.Threads {
		if !before[th.TGID].threads[th.TID] && !after[th.TGID].threads[th.TID] {
			out = append(out, fmt.Sprintf("thread %d of %d is in the table but not in /proc", th.TID, th.TGID))
		}
	}
	return out
}
