package top

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

const helperEnv = "CNBRIDGED_TOP_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}

// replay hands out recorded samples, then blocks (the screen stays on the
// last frame).
type replay struct {
	samples []Sample
	next    int
}

func (r *replay) Name() string { return "http://127.0.0.1:9464/metrics" }

func (r *replay) Sample() (Sample, error) {
	if r.next == len(r.samples) {
		select {}
	}
	r.next++
	return r.samples[r.next-1], nil
}

// runHelper runs the real bubbletea program on the recorded scrapes, in
// the terminal tmux gives it.
func runHelper() int {
	prev, cur, err := loadRecorded()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m := NewModel(&replay{samples: []Sample{prev, cur}}, 100*time.Millisecond, NewStyles(true))
	if _, err := tea.NewProgram(m).Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestTerminal drives the program in a real terminal (tmux): the screen
// shows the recorded frame, and q quits.
func TestTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed (apt-get install tmux)")
	}
	sock := fmt.Sprintf("cnbridged-top-test-%d", os.Getpid()) // a server of our own
	run := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("kill-server") })
	self, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	cmd := fmt.Sprintf("cd %q && env %s=1 TERM=xterm-256color %q -test.run='^$'", wd, helperEnv, self)
	if out, err := run("new-session", "-d", "-s", "top", "-x", "100", "-y", "30", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "local.golden"))
	if err != nil {
		t.Fatal(err)
	}
	wantLines := trimLines(string(want))
	var screen []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run("capture-pane", "-p", "-t", "top")
		if err == nil {
			screen = trimLines(out)
			if len(screen) >= len(wantLines) && cmp.Equal(wantLines, screen[:len(wantLines)]) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("screen (-want +got):\n%s", cmp.Diff(wantLines, screen))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := run("send-keys", "-t", "top", "q"); err != nil {
		t.Fatalf("send-keys: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := run("has-session", "-t", "top"); err != nil {
			return // the program quit, and its session with it
		}
		if time.Now().After(deadline) {
			out, _ := run("capture-pane", "-p", "-t", "top")
			t.Fatalf("still running 10 s after q:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trimLines splits a screen into lines without trailing blanks, dropping
// empty lines at the end.
func trimLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
