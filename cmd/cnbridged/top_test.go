package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTopInTmux runs "cnbridged top" in a real terminal (tmux) against a
// running daemon: the screen shows the daemon's host and sinks, and q quits.
func TestTopInTmux(t *testing.T) {
	needRoot(t)
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
	waitFor(t, 20*time.Second, "top's frame with rates", func() bool {
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
	waitFor(t, 10*time.Second, "top to quit on q", func() bool {
		_, err := run("has-session", "-t", "top")
		return err != nil
	})
}
