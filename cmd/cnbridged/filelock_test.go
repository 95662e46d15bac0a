package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// groupLock is the group (and val) of the ops engineer's file lock test.
const groupLock = 10

// TestFileSinkLock: a second daemon started on the file sink path a running
// one writes is refused at start (exit 1) with an error naming the running
// one's pid, and nothing of it reaches the file; a reload that changes the
// sink (same path) takes the file over and goes on writing.
func TestFileSinkLock(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	dir := t.TempDir()
	config := strings.ReplaceAll(reloadConfig(groupLock, map[string]string{"out": "events.jsonl"}, "out"), "%DIR%", dir)
	first := startBinary(t, daemonBinary(t), dir, config)
	events := filepath.Join(dir, "events.jsonl")

	dir2 := t.TempDir()
	path2 := filepath.Join(dir2, "cnbridged.yaml")
	if err := os.WriteFile(path2, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	second := newProc(t, exec.Command(daemonBinary(t), daemonArgs(dir2, path2, freePort(t))...), dir2, path2, "")
	if err := second.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code := second.exitWithin(20 * time.Second); code != 1 {
		t.Fatalf("second daemon on the same file: exit %d, want 1\n%s", code, second.stderr.String())
	}
	want := events + " is locked by pid " + strconv.Itoa(first.cmd.Process.Pid)
	if log := second.stderr.String(); !strings.Contains(log, want) {
		t.Errorf("second daemon's log lacks %q:\n%s", want, log)
	}

	em := newEmitter(t)
	seq := uint32(0)
	delivered := func(what string) {
		t.Helper()
		em.send(groupLock, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupLock}, Seq: seq}, []byte("lock"))
		seq++
		cntest.WaitFor(t, 10*time.Second, what, func() bool { return len(seqs(t, events)) == int(seq) })
	}
	delivered("the first message in the file")

	// A reload that changes the sink: its new runner opens the same path
	// while the old one still holds it.
	writeAtomic(t, first.config, strings.Replace(config, "path: "+events, "path: "+events+"\n    max_files: 3", 1))
	cntest.WaitFor(t, 10*time.Second, "a successful reload", func() bool {
		return first.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	if got := first.metric("cnbridged_config_reloads_total", map[string]string{"result": "failure"}); got != 0 {
		t.Fatalf("reload failed (%v failures):\n%s", got, first.stderr.String())
	}
	delivered("a message after the reload")
	first.stop()
}
