package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestReaderPriorityFollowsEnrichment: the reader thread runs at
// SCHED_FIFO (listener.reader_priority) while a route enriches, and at
// the process's scheduling once a reload leaves no enriching route (the
// priority then only costs CPU); a reload back raises it again.
func TestReaderPriorityFollowsEnrichment(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	enriching := fileConfig("[1]", `  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out]`, "")
	plain := fileConfig("[1]", `  - match: "1.1"
    events: [exec]
    sinks: [out]`, "")
	p := startDaemon(t, enriching)
	pid := p.cmd.Process.Pid
	cntest.WaitFor(t, 10*time.Second, "a SCHED_FIFO thread in the enriching daemon", func() bool { return fifoThreads(t, pid) == 1 })
	for i, c := range []struct {
		config string
		want   int
	}{{plain, 0}, {enriching, 1}} {
		writeAtomic(t, p.config, strings.ReplaceAll(c.config, "%DIR%", p.dir))
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		cntest.WaitFor(t, 10*time.Second, fmt.Sprintf("reload %d: %d SCHED_FIFO threads", i+1, c.want), func() bool { return fifoThreads(t, pid) == c.want })
	}
	p.stop()
}

// fifoThreads counts pid's threads whose policy (field 41 of stat) is
// SCHED_FIFO.
func fifoThreads(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 41-3 {
			if policy, _ := strconv.Atoi(f[41-3]); policy == 1 {
				n++
			}
		}
	}
	return n
}
