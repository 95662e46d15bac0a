package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestTopInTmux runs "cnbridged top" in a real terminal (tmux) against a
// running daemon: the screen shows the daemon's host and sinks, and q quits.
func TestTopInTmux(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed (apt-get install tmux)")
	}
	p := startDaemon(t, tapConfig(groupTap))
	sock := fmt.Sprintf("cnbridged-top-e2e-%d", os.Getpid()) // a tmux server of our own
	run := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("kill-server") })
	cmd := fmt.Sprintf("TERM=xterm-256color %q top --url http://%s/metrics --host top-e2e --interval 200ms", daemonBinary(t), p.metrics)
	if out, err := run("new-session", "-d", "-s", "top", "-x", "110", "-y", "30", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	var screen string
	cntest.WaitFor(t, 20*time.Second, "top's frame with rates", func() bool {
		screen, _ = run("capture-pane", "-p", "-t", "top")
		return strings.Contains(screen, "rates over the last") && strings.Contains(screen, "top-e2e") &&
			strings.Contains(screen, "out ") && strings.Contains(screen, "kernel socket drops: 0")
	})
	if strings.Contains(screen, "_tap") {
		t.Errorf("the tap shows as a sink:\n%s", screen)
	}
	if _, err := run("send-keys", "-t", "top", "q"); err != nil {
		t.Fatal(err)
	}
	cntest.WaitFor(t, 10*time.Second, "top to quit on q", func() bool {
		_, err := run("has-session", "-t", "top")
		return err != nil
	})
}

// TestTopWithoutDaemonAndStdin: top with stdin from /dev/null (and no
// daemon) draws in its terminal and reads keys from the controlling
// terminal: the frame says there is no sample yet (no made-up 00:00:00)
// and the error, and q quits with 0. With stdout not a terminal, it says
// it needs one.
func TestTopWithoutDaemonAndStdin(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed (apt-get install tmux)")
	}
	t.Parallel()
	sock := fmt.Sprintf("cnbridged-top-nostdin-%d", os.Getpid())
	run := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("kill-server") })
	done := filepath.Join(t.TempDir(), "exit")
	cmd := fmt.Sprintf("TERM=xterm-256color %q top --url http://127.0.0.1:1/metrics --interval 200ms </dev/null 2>&1; echo $? > %q; sleep 30",
		daemonBinary(t), done)
	if out, err := run("new-session", "-d", "-s", "top", "-x", "110", "-y", "20", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	var screen string
	cntest.WaitFor(t, 20*time.Second, "top's frame with the scrape error", func() bool {
		screen, _ = run("capture-pane", "-p", "-t", "top")
		return strings.Contains(screen, "no sample yet") && strings.Contains(screen, "error: scraping")
	})
	if strings.Contains(screen, "00:00:00") || strings.Contains(screen, "epoll") {
		t.Errorf("frame:\n%s", screen)
	}
	if _, err := run("send-keys", "-t", "top", "q"); err != nil {
		t.Fatal(err)
	}
	cntest.WaitFor(t, 10*time.Second, "top to quit on q", func() bool {
		b, err := os.ReadFile(done)
		return err == nil && len(b) > 0
	})
	if b, _ := os.ReadFile(done); strings.TrimSpace(string(b)) != "0" {
		t.Errorf("exit %s, want 0; screen:\n%s", b, screen)
	}

	var out bytes.Buffer
	if code := runCLI([]string{"top", "--url", "http://127.0.0.1:1/metrics"}, &out); code != 1 || !strings.Contains(out.String(), "needs a terminal on stdout; for a table, use cnbridged stats") {
		t.Errorf("stdout not a terminal: exit %d:\n%s", code, out.String())
	}
}

func runCLI(args []string, out *bytes.Buffer) int { return run(args, out, out) }
