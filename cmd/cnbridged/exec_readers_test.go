package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestExecReadersBurst: with process_table.exec_readers: 2, a burst of 40
// execs (made while the daemon is stopped, so that it receives them
// together) that the reader does not read as it receives them
// (capture_budget: 0s) is read late by two goroutines, and every exec line
// describes its own process: its pid's sleep with its own arguments,
// marked late.
func TestExecReadersBurst(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out]`, `process_table:
  exec_readers: 2
  capture_budget: 0s`))
	p.pause()
	const n = 40
	want := map[int]string{}
	for i := range n {
		arg := fmt.Sprintf("60.%03d", i)
		cmd := exec.Command("sleep", arg)
		if err := cmd.Start(); err != nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		want[cmd.Process.Pid] = fmt.Sprint([]string{"sleep", arg})
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(p.dir, "out/events.jsonl")
	got := map[int]*line{}
	cntest.WaitFor(t, 20*time.Second, "the 40 execs", func() bool {
		for pid := range want {
			if got[pid] == nil {
				got[pid] = eventOf(linesOf(t, out, pid), "exec")
			}
			if got[pid] == nil {
				return false
			}
		}
		return true
	})
	sleep, _ := filepath.EvalSymlinks("/bin/sleep")
	for pid, args := range want {
		l := got[pid]
		if l.Process["pid"] != float64(pid) || l.Process["exe"] != sleep || fmt.Sprint(l.Process["cmdline"]) != args {
			t.Errorf("pid %d: got %s, want exe %s and cmdline %s", pid, l.raw, sleep, args)
		}
		if late := fmt.Sprint(l.Process["late"]); late != "[cmdline exe cwd cgroup comm]" {
			t.Errorf("pid %d: late %s, want [cmdline exe cwd cgroup comm]: nothing was read at receive", pid, late)
		}
	}
	if b := p.metric("cnbridged_enrich_exec_bursts_total", nil); b < 1 {
		t.Errorf("cnbridged_enrich_exec_bursts_total = %v, want at least 1: the burst was read by one goroutine", b)
	}
	p.stop()
}
