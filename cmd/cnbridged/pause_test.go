package main

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// pause stops the daemon (SIGSTOP) and returns once every one of its
// threads has stopped. kill(2) only starts a group stop: one thread must
// run to stop the others, and meanwhile the rest run on; the reader, at a
// realtime priority, runs first and would read what the test makes while
// it counts the daemon as stopped.
func (p *proc) pause() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; {
		if allStopped(pid) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("daemon %d: not every thread stopped within 10 s of SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is in the stopped state
// (T in stat).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
