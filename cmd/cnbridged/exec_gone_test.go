package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestExecGoneBeforeRead (issue 20): an exec whose process has exited and
// been reaped before the daemon reads anything (the daemon is stopped
// meanwhile) lists comm as missing and gives none; it never gives the
// parent's name as the new image's. On the code before, comm was the
// parent's ("cnbridged.test") and not listed missing.
func TestExecGoneBeforeRead(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [fork, exec]
    enrich: true
    sinks: [out]`, ""))
	out := filepath.Join(p.dir, "out/events.jsonl")
	p.pause()
	begin := monoNs(t)
	cmd := exec.Command("/bin/true", "gone-before-read")
	err := cmd.Run()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var fork, ex *line
	cntest.WaitFor(t, 10*time.Second, "the child's fork and exec", func() bool {
		var ls []line // this life of the pid: from the fork on, its first exec
		for _, l := range linesOf(t, out, pid) {
			if ts, _ := l.Proc["timestamp_ns"].(float64); ts >= begin {
				ls = append(ls, l)
			}
		}
		fork, ex = eventOf(ls, "fork"), eventOf(ls, "exec")
		return fork != nil && ex != nil
	})
	parentComm := fork.Process["comm"]
	if parentComm == nil || parentComm == "" {
		t.Fatalf("the fork's child has no inherited comm: %s", fork.raw)
	}
	missing, _ := ex.Process["missing"].([]any)
	if ex.Process["comm"] != "" || !slices.Contains(missing, any("comm")) || !slices.Contains(missing, any("exe")) {
		t.Errorf("exec of a process gone before any read: %s; want comm empty and listed missing (the parent's is %v)", ex.raw, parentComm)
	}
	p.stop()
}
