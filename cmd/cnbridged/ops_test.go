package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

const (
	groupDisk   = 27
	groupRotate = 26
	groupNotify = 20
)

// TestSystemdNotify: READY=1 only once subscribed, RELOADING=1 then READY=1
// around a reload, WATCHDOG=1 pings, STOPPING=1 at shutdown — read from a
// NOTIFY_SOCKET the test owns.
func TestSystemdNotify(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var states []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			states = append(states, strings.Split(string(buf[:n]), "\n")...)
			mu.Unlock()
		}
	}()
	seen := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for _, x := range states {
			if x == s {
				k++
			}
		}
		return k
	}
	cfg := reloadConfig(groupNotify, map[string]string{"a": "a.jsonl"}, "a")
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "300000")
	p := startBinary(t, daemonBinary(t), dir, strings.ReplaceAll(cfg, "%DIR%", dir), "--no-watch")
	cntest.WaitFor(t, 5*time.Second, "READY=1", func() bool { return seen("READY=1") == 1 })
	cntest.WaitFor(t, 5*time.Second, "watchdog pings", func() bool { return seen("WATCHDOG=1") >= 3 })
	p.cmd.Process.Signal(syscall.SIGHUP)
	cntest.WaitFor(t, 5*time.Second, "RELOADING=1 then READY=1", func() bool { return seen("RELOADING=1") == 1 && seen("READY=1") == 2 })
	p.stop()
	if seen("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times, want 1", seen("STOPPING=1"))
	}
	mu.Lock()
	first := states[0]
	mu.Unlock()
	if first != "READY=1" && !strings.HasPrefix(first, "WATCHDOG") {
		t.Errorf("first state %q, want READY=1", first)
	}
}

// TestDaemonFullDisk: the file sink's directory is a small tmpfs. Filling it
// drops lines (counted), the daemon stays up, every line in the file is
// whole JSON; once space returns (the file is rotated away and the sink
// told to reopen) writing resumes.
func TestDaemonFullDisk(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	os.Mkdir(disk, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", disk).Run() })
	id := fmt.Sprintf("%d.%d", idxTest, groupDisk)
	cfg := fmt.Sprintf(`
listener:
  groups: [%d]
  userspace_senders: ["%s"]
sinks:
  out:
    type: file
    path: %s/events.jsonl
    on_error: drop
routes:
  - match: "%s"
    sinks: [out]
`, groupDisk, id, disk, id)
	p := startBinary(t, daemonBinary(t), dir, cfg, "--no-watch")
	em := newEmitter(t)
	payload := make([]byte, 200)
	sent := 0
	send := func(k int) {
		for i := 0; i < k; i++ {
			em.send(groupDisk, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupDisk}, Seq: uint32(sent)}, payload)
			sent++
			if i%100 == 99 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	send(2000) // ~700 KB of lines into 256 KiB
	sel := func(r string) map[string]string { return map[string]string{"sink": "out", "result": r} }
	cntest.WaitFor(t, 10*time.Second, "every line accounted", func() bool {
		return p.metric("cnbridged_sink_messages_total", sel("sent"))+p.metric("cnbridged_sink_messages_total", sel("dropped")) == float64(sent)
	})
	written := p.metric("cnbridged_sink_messages_total", sel("sent"))
	if d := p.metric("cnbridged_sink_dropped_total", map[string]string{"reason": "write_error"}); d == 0 || written == 0 {
		t.Fatalf("sent %v, dropped for write errors %v: want both > 0", written, d)
	}
	if got := len(readLines(t, filepath.Join(disk, "events.jsonl"))); float64(got) != written {
		t.Fatalf("file holds %d whole lines, sink says %v sent", got, written)
	}
	if n := strings.Count(p.stderr.String(), "file sink cannot write"); n != 1 {
		t.Errorf("the full disk was logged %d times, want once per episode", n)
	}
	// Space returns: the full file is shipped away, and the sink is told
	// to reopen (SIGUSR1, as logrotate's postrotate would).
	os.Remove(filepath.Join(disk, "events.jsonl"))
	reopens := strings.Count(p.stderr.String(), "file sinks will reopen")
	p.cmd.Process.Signal(syscall.SIGUSR1)
	cntest.WaitFor(t, 10*time.Second, "SIGUSR1 to be handled", func() bool {
		return strings.Count(p.stderr.String(), "file sinks will reopen") > reopens
	})
	before := p.metric("cnbridged_sink_messages_total", sel("sent"))
	send(100)
	cntest.WaitFor(t, 10*time.Second, "writing to resume", func() bool {
		return p.metric("cnbridged_sink_messages_total", sel("sent"))-before == 100
	})
	if got := len(readLines(t, filepath.Join(disk, "events.jsonl"))); got != 100 {
		t.Errorf("new file has %d lines, want 100", got)
	}
	p.stop()
}

// TestRotationUnderLoad: many size rotations while messages flow; the
// lines across all files equal the messages sent, each exactly once.
func TestRotationUnderLoad(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	id := fmt.Sprintf("%d.%d", idxTest, groupRotate)
	cfg := fmt.Sprintf(`
listener:
  groups: [%d]
  receive_buffer_bytes: 33554432
  userspace_senders: ["%s"]
sinks:
  out:
    type: file
    path: %s/events.jsonl
    max_size_bytes: 65536
    max_files: 1000
routes:
  - match: "%s"
    sinks: [out]
`, groupRotate, id, dir, id)
	p := startBinary(t, daemonBinary(t), dir, cfg, "--no-watch")
	const n = 20000
	wait := steadySender(t, groupRotate, n, 20000)
	wait()
	// About 100 rotations: 6-11 s under -race with two busy loops, more
	// in the full suite on a loaded machine.
	cntest.WaitFor(t, 60*time.Second, "every message written", func() bool {
		return p.metric("cnbridged_sink_messages_total", map[string]string{"sink": "out", "result": "sent"}) == n
	})
	p.stop()
	files, _ := filepath.Glob(filepath.Join(dir, "events.jsonl*"))
	if len(files) < 20 {
		t.Fatalf("%d files: want many rotations", len(files))
	}
	seen := make([]bool, n)
	total := 0
	for _, f := range files {
		for _, l := range readLines(t, f) {
			if seen[l.Seq] {
				t.Fatalf("seq %d twice", l.Seq)
			}
			seen[l.Seq] = true
			total++
		}
	}
	if total != n {
		t.Errorf("lines across %d files: %d, want %d", len(files), total, n)
	}
}
