package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// Groups of the shutdown and restart tests (the "edges" tests: 2..5).
const (
	groupStopDrain = 2
	groupStalled   = 3
	groupNATSDown  = 4
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

// stopWithin sends SIGTERM and checks that the daemon exits 0 within
// timeout (its shutdown_timeout) plus process teardown.
func (p *proc) stopWithin(timeout time.Duration, what string) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	if code := p.exitWithin(timeout + 20*time.Second); code != 0 {
		p.t.Fatalf("exit code got %d, want 0", code)
	}
	took := time.Since(start)
	p.t.Logf("stopped %s after SIGTERM %s (shutdown_timeout %s)", took.Round(time.Millisecond), what, timeout)
	if took > timeout+2*time.Second {
		p.t.Errorf("stop took %s, want at most shutdown_timeout (%s) plus process teardown", took, timeout)
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
	cntest.NeedRoot(t, rootReason)
	const n = 5000
	id := cnmsg.ID{Idx: idxTest, Val: 0x5d2}
	ids := fmt.Sprintf("%d.%d", id.Idx, id.Val)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupStopDrain, "]"),
		`  - match: "`+ids+`"
    sinks: [out]`,
		`  userspace_senders: ["`+ids+`"]`))
	p.pause()
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

// startStalled runs the daemon on config with its stdout a pipe nobody
// reads: a stdout sink stalls once the pipe's buffer is full.
func startStalled(t *testing.T, config string) *proc {
	t.Helper()
	dir := t.TempDir()
	config = strings.ReplaceAll(config, "%DIR%", dir)
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	addr := freePort(t)
	p := newProc(t, exec.Command(daemonBinary(t), append(daemonArgs(dir, path, addr), "--no-watch")...), dir, path, addr)
	p.cmd.Stdout = pw
	p.launch()
	pw.Close() // the daemon holds the only write end
	return p
}

// TestReloadAndStopWithStalledBlockingSink: a stdout sink with
// when_full: block stalls (its pipe is never read), so the kernel reader
// waits in it. A reload that retires another sink, then SIGTERM: the
// daemon still stops within shutdown_timeout, exit code 0. (Before, the
// plan swap spun forever waiting for the reader and SIGTERM was never
// handled.)
func TestReloadAndStopWithStalledBlockingSink(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const shutdownTimeout = 3 * time.Second
	id := cnmsg.ID{Idx: idxTest, Val: 0x5d3}
	ids := fmt.Sprintf("%d.%d", id.Idx, id.Val)
	cfg := func(withOut bool) string {
		sinks, route := "", "[console]"
		if withOut {
			sinks, route = "  out:\n    type: file\n    path: %DIR%/out/events.jsonl\n", "[console, out]"
		}
		return fmt.Sprintf(`
shutdown_timeout: %s
listener:
  groups: [%d]
  receive_buffer_bytes: 33554432
  userspace_senders: [%q]
sinks:
  console:
    type: stdout
    queue_size: 64
    when_full: block
%sroutes:
  - match: %q
    sinks: %s
`, shutdownTimeout, groupStalled, ids, sinks, ids, route)
	}
	p := startStalled(t, cfg(true))
	em := newEmitter(t)
	payload := make([]byte, 256)
	const n = 20000
	for i := 0; i < n; i++ {
		em.send(groupStalled, cnmsg.Header{ID: id, Seq: uint32(i)}, payload)
	}
	// The reader is stuck once it stops reading datagrams.
	last := -1.0
	cntest.WaitFor(t, 20*time.Second, "the reader blocked on the stalled sink", func() bool {
		got := p.metric("cnbridged_socket_datagrams_total", nil)
		stuck := got == last && got < n
		last = got
		return stuck
	})
	if err := os.WriteFile(p.config, []byte(strings.ReplaceAll(cfg(false), "%DIR%", p.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	cntest.WaitFor(t, 10*time.Second, "the reload to start", func() bool {
		return strings.Contains(p.stderr.String(), "SIGHUP: reloading config")
	})
	p.stopWithin(shutdownTimeout, "with a stalled sink")
	if last := p.lastLogLine(); last["msg"] != "cnbridged stopped" {
		t.Errorf("last log line got %v, want the stop summary", last)
	}
}

// TestStopWhileNATSDown: the NATS server goes away, 1 000 messages arrive
// for a core NATS sink, then SIGTERM. The stop takes no longer than
// shutdown_timeout (not a fixed 10 s), exits 0, and the summary accounts
// for every record: sent + failed + dropped = 1 000, and the sink's own
// closing line counts as failed what the summary counts as failed.
func TestStopWhileNATSDown(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const n = 1000
	const shutdownTimeout = 3 * time.Second
	ns := natstest.Run(t)
	id := cnmsg.ID{Idx: idxTest, Val: 0x5d4}
	ids := fmt.Sprintf("%d.%d", id.Idx, id.Val)
	p := startDaemon(t, fmt.Sprintf(`
shutdown_timeout: %s
listener:
  groups: [%d]
  receive_buffer_bytes: 33554432
  userspace_senders: [%q]
sinks:
  n:
    type: nats
    url: nats://127.0.0.1:%d
    drain_timeout: %s
routes:
  - match: %q
    sinks: [n]
`, shutdownTimeout, groupNATSDown, ids, natstest.ClientPort(ns), shutdownTimeout, ids))
	ns.Shutdown()
	ns.WaitForShutdown()
	cntest.WaitFor(t, 10*time.Second, "the sink to see the outage", func() bool {
		return strings.Contains(p.stderr.String(), "disconnected from NATS")
	})
	em := newEmitter(t)
	for i := 0; i < n; i++ {
		em.send(groupNATSDown, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte{byte(i)})
	}
	sel := map[string]string{"idx": fmt.Sprint(id.Idx), "val": fmt.Sprint(id.Val)}
	cntest.WaitFor(t, 10*time.Second, "every message received", func() bool {
		return p.metric("cnbridged_messages_received_total", sel) >= n
	})
	p.stopWithin(shutdownTimeout, "with NATS down")
	last := p.lastLogLine()
	sinks, _ := last["sinks"].(map[string]any)
	s, _ := sinks["n"].(map[string]any)
	if last["msg"] != "cnbridged stopped" || s == nil {
		t.Fatalf("last log line got %v, want the stop summary with sink n", last)
	}
	sent, failed, dropped := s["sent"].(float64), s["failed"].(float64), s["dropped"].(float64)
	if sent+failed+dropped != n || sent != 0 {
		t.Errorf("summary for sink n: sent %v + failed %v + dropped %v, want 0 sent and %d in all", sent, failed, dropped, n)
	}
	var closeFailed float64
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), "closing the NATS sink") {
			closeFailed += m["failed"].(float64)
		}
	}
	t.Logf("last log lines:\n%s", tail(p.stderr.String(), 4))
	if closeFailed != failed {
		t.Errorf("the NATS sink's closing line counted %v failed, the summary %v", closeFailed, failed)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
