package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// Groups of the shutdown and restart tests (the "edges" tests: 2..5).
const (
	groupStopDrain = 2
)

// exitWithin waits for the daemon to exit and returns its exit code.
func (p *proc) exitWithin(d time.Duration) int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		p.t.Fatalf("daemon did not exit within %s\n%s", d, p.stderr.String())
		return -1
	}
}

// lastLogLine decodes the daemon's last JSON log line.
func (p *proc) lastLogLine() map[string]any {
	p.t.Helper()
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		p.t.Fatalf("last log line is not JSON: %v: %q", err, lines[len(lines)-1])
	}
	return m
}

// TestStopDrainsSocket: messages already in the socket when SIGTERM comes
// are read and delivered before the daemon exits. The daemon is stopped
// (SIGSTOP) while 5 000 messages are multicast to it, then gets SIGTERM and
// SIGCONT: every one of them is in the file sink, the exit code is 0 and
// the last log line is the stop summary counting them.
func TestStopDrainsSocket(t *testing.T) {
	needRoot(t)
	const n = 5000
	id := cnmsg.ID{Idx: idxTest, Val: 0x5d2}
	ids := fmt.Sprintf("%d.%d", id.Idx, id.Val)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupStopDrain, "]"),
		`  - match: "`+ids+`"
    sinks: [out]`,
		`  userspace_senders: ["`+ids+`"]`))
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	em := newEmitter(t)
	for i := 0; i < n; i++ {
		em.send(groupStopDrain, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte{byte(i)})
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := p.exitWithin(30 * time.Second); code != 0 {
		t.Fatalf("exit code got %d, want 0\n%s", code, p.stderr.String())
	}
	got := 0
	for _, l := range readLines(t, filepath.Join(p.dir, "out/events.jsonl")) {
		if l.Idx == id.Idx && l.Val == id.Val && l.Type == "" {
			if l.Seq != uint32(got) {
				t.Fatalf("line %d has seq %d, want %d", got, l.Seq, got)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("file sink got %d of %d messages sent before SIGTERM\n%s", got, n, p.stderr.String())
	}
	last := p.lastLogLine()
	if last["msg"] != "cnbridged stopped" || last["received"] != float64(n) {
		t.Errorf("last log line got %v, want the stop summary with received %d", last, n)
	}
	sinks, _ := last["sinks"].(map[string]any)
	out, _ := sinks["out"].(map[string]any)
	if out["sent"] != float64(n) || out["dropped"] != float64(0) || out["failed"] != float64(0) {
		t.Errorf("summary for sink out got %v, want sent %d, nothing dropped or failed", out, n)
	}
}
