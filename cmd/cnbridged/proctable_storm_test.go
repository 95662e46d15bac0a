package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestHelperThreadStorm is not a test: run with CN_THREAD_STORM=n it makes
// about n short-lived threads (a goroutine that exits while locked to its
// thread ends that thread), for TestThreadStorm.
func TestHelperThreadStorm(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("CN_THREAD_STORM"))
	if err != nil {
		t.Skip("helper process for TestThreadStorm")
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		}()
		if i%32 == 31 {
			wg.Wait()
		}
	}
	wg.Wait()
}

// TestThreadStorm: a process making ~20 000 threads. Every event the
// enriching route gets is enriched (none skipped or gone), thread events are
// marked, and the route with threads: false gets none of them (counted as
// filtered).
func TestThreadStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 20 000 threads: the full run (go test without -short) has it")
	}
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, twoSinkConfig("", `  - match: "1.1"
    events: [fork, exec, exit]
    enrich: true
    sinks: [a]
  - match: "1.1"
    events: [fork, exec, exit]
    enrich: true
    threads: false
    sinks: [b]
`))
	const n = 20000
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperThreadStorm$")
	cmd.Env = append(os.Environ(), "CN_THREAD_STORM="+strconv.Itoa(n))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	took := time.Since(start)
	tgid := float64(cmd.Process.Pid)
	a, b := filepath.Join(p.dir, "a/events.jsonl"), filepath.Join(p.dir, "b/events.jsonl")
	leaderExit := func(path string) bool {
		for _, l := range readLines(t, path) {
			if l.Proc != nil && l.Proc["event"] == "exit" && l.Proc["pid"] == tgid {
				return true
			}
		}
		return false
	}
	cntest.WaitFor(t, 60*time.Second, "the helper's exit in both sinks", func() bool { return leaderExit(a) && leaderExit(b) })
	threadForks, threadExits := 0, 0
	for _, l := range readLines(t, a) {
		if l.Proc == nil {
			continue
		}
		if l.Process == nil || l.Process["skipped"] == true {
			t.Fatalf("sink a: an event not enriched: %s", l.raw)
		}
		isThread := l.Proc["event"] == "fork" && l.Proc["child_tgid"] == tgid && l.Proc["child_pid"] != tgid ||
			l.Proc["event"] == "exit" && l.Proc["tgid"] == tgid && l.Proc["pid"] != tgid
		if !isThread {
			continue
		}
		if l.Proc["thread"] != true {
			t.Fatalf("thread event not marked: %s", l.raw)
		}
		if l.Process["gone"] == true || l.Process["tgid"] != tgid {
			t.Fatalf("thread event not described by its group: %s", l.raw)
		}
		if l.Proc["event"] == "fork" {
			threadForks++
		} else {
			threadExits++
		}
	}
	t.Logf("%d thread forks, %d thread exits in %v: %.0f events/s", threadForks, threadExits, took,
		float64(threadForks+threadExits)/took.Seconds())
	if threadForks < n || threadExits < n {
		t.Errorf("sink a: %d thread forks, %d thread exits; want at least %d each", threadForks, threadExits, n)
	}
	for _, l := range readLines(t, b) {
		if l.Proc != nil && l.Proc["thread"] == true {
			t.Fatalf("sink b (threads: false) got a thread event: %s", l.raw)
		}
	}
	if got := p.metric("cnbridged_thread_events_filtered_total", nil); got < float64(2*n) {
		t.Errorf("thread_events_filtered_total %v, want at least %d", got, 2*n)
	}
	if got := p.metric("cnbridged_enrich_total", map[string]string{"result": "skipped"}); got != 0 {
		t.Errorf("enrich_total{skipped} %v, want 0", got)
	}
	p.stop()
}

// TestLossResync: with a 64 KiB receive buffer and the daemon stopped
// (SIGSTOP), a burst of processes overflows the socket; sleeps killed
// then lose their exit events. After SIGCONT the table is reconciled with
// /proc: one exit_lost record for each killed sleep, none for the ones
// still running.
func TestLossResync(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, `
listener:
  groups: [1]
  receive_buffer_bytes: 65536
sinks:
  out:
    type: file
    path: %DIR%/out/events.jsonl
    queue_size: 262144
routes:
  - match: "1.1"
    events: [exec, exit]
    enrich: true
    sinks: [out]
`)
	out := filepath.Join(p.dir, "out/events.jsonl")
	const n = 10
	sleeps := startSleeps(t, n, out)
	p.pause()
	burst := func(k int) {
		for i := 0; i < k; i++ {
			exec.Command("/bin/true").Run()
		}
	}
	burst(1000) // fills the socket
	killed := map[float64]bool{}
	for _, c := range sleeps[:n/2] {
		c.Process.Kill()
		c.Wait()
		killed[float64(c.Process.Pid)] = true
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	lostSeen := func() map[float64]int {
		m := map[float64]int{}
		for _, l := range readLines(t, out) {
			if l.Type == "exit_lost" && l.Process != nil {
				m[l.Process["pid"].(float64)]++
			}
		}
		return m
	}
	cntest.WaitFor(t, 30*time.Second, "exit_lost records for the killed sleeps", func() bool {
		burst(20) // events after the loss reveal it and carry the records out
		m := lostSeen()
		for pid := range killed {
			if m[pid] == 0 {
				return false
			}
		}
		return true
	})
	m := lostSeen()
	for _, c := range sleeps {
		pid := float64(c.Process.Pid)
		switch {
		case killed[pid] && m[pid] != 1:
			t.Errorf("killed sleep %v: %d exit_lost records, want 1", pid, m[pid])
		case !killed[pid] && m[pid] != 0:
			t.Errorf("living sleep %v: %d exit_lost records, want 0", pid, m[pid])
		}
	}
	for _, l := range readLines(t, out) {
		if l.Type == "exit_lost" && killed[l.Process["pid"].(float64)] {
			if l.Process["exe"] == "" || l.Process["entity_id"] == "" {
				t.Errorf("exit_lost without what the table knew: %s", l.raw)
			}
		}
	}
	if got := p.metric("cnbridged_proctable_resyncs_total", nil); got < 1 {
		t.Errorf("resyncs_total %v, want at least 1", got)
	}
	p.stop()
}
