package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/filelock"
)

// TestCheckTriesWhatRunDoes: check creates and opens each file sink's file
// for appending and takes its lock, binds the tap socket and locks and
// writes in state_dir, as run would: where run fails (or goes on without
// the tap or the restart trace), check says FAIL with the fix; where it
// works, check says ok and leaves nothing behind.
func TestCheckTriesWhatRunDoes(t *testing.T) {
	t.Parallel()
	bin := daemonBinary(t)
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// What this test holds, as another daemon would.
	heldFile := filepath.Join(dir, "held", "events.jsonl")
	heldState := filepath.Join(dir, "heldstate")
	for _, p := range []string{heldFile, filepath.Join(heldState, ".lock")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := filelock.Lock(f); err != nil {
			t.Fatal(err)
		}
	}
	servedSock := filepath.Join(dir, "served.sock")
	ln, err := net.Listen("unix", servedSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid := strconv.Itoa(os.Getpid())

	fresh := filepath.Join(dir, "fresh")
	tests := []struct {
		name string
		sink string // the file sink's path
		tap  string
		dir  string // state_dir
		want []string
	}{
		{name: "file sink on sysfs", sink: "/sys/kernel/cnbridged-check/events.jsonl", want: []string{
			"FAIL sink f", "mkdir /sys/kernel/cnbridged-check", "fix: /sys/kernel is on sysfs, where no files can be created"}},
		{name: "file sink on procfs", sink: "/proc/nope/events.jsonl", want: []string{
			"FAIL sink f", "mkdir /proc/nope: no such file or directory", "fix: /proc is on procfs, where no files can be created"}},
		{name: "file sink another process writes", sink: heldFile, want: []string{
			"FAIL sink f", heldFile + " is locked by pid " + pid, "fix: stop the process that writes it (pid " + pid + ")"}},
		{name: "tap socket under a regular file", tap: filepath.Join(regular, "tap.sock"), want: []string{
			"FAIL tap socket", "not a directory: run would go on without the live view", "fix: create " + regular}},
		{name: "tap socket served by another process", tap: servedSock, want: []string{
			"FAIL tap socket", "another process serves this socket", "fix: stop the process that serves it"}},
		{name: "state_dir under a regular file", dir: filepath.Join(regular, "state"), want: []string{
			"FAIL state_dir", "not a directory: run would go on without a restart trace", "fix: create " + filepath.Join(regular, "state")}},
		{name: "state_dir another daemon uses", dir: heldState, want: []string{
			"FAIL state_dir", "another cnbridged uses this state_dir", "locked by pid " + pid, "fix: stop the cnbridged with pid " + pid}},
		{name: "all creatable: ok, and nothing left behind",
			sink: filepath.Join(fresh, "log", "events.jsonl"), tap: filepath.Join(fresh, "run", "tap.sock"), dir: filepath.Join(fresh, "state"),
			want: []string{"ok   sink f", "opened for appending and locked as uid", "ok   tap socket", "bound as uid", "ok   state_dir", "locked and written as uid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := tt.sink
			if sink == "" {
				sink = filepath.Join(dir, tt.name, "events.jsonl")
			}
			args := []string{"check", "--set", "metrics.listen=", "--set", "log.level=error",
				"--set", "sinks.stdout.type=file", "--set", "sinks.stdout.path=" + sink,
				"--set", "tap.socket=" + tt.tap, "--set", "state_dir=" + tt.dir}
			out, err := exec.Command(bin, args...).CombinedOutput()
			fails := strings.Contains(tt.want[0], "FAIL")
			if ee, ok := err.(*exec.ExitError); fails && (!ok || ee.ExitCode() != 1) {
				t.Errorf("exit: got %v, want 1", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), strings.ReplaceAll(w, "sink f", "sink stdout")) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if got := entries(t, fresh); len(got) != 0 {
		t.Errorf("check left %v behind in %s", got, fresh)
	}
	if got, want := entries(t, filepath.Join(dir, "held")), []string{"events.jsonl"}; !cmp.Equal(got, want) {
		t.Errorf("held sink's directory: got %v, want %v", got, want)
	}
}

// entries lists the names under dir, recursively ("" for a missing dir).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(fmt.Errorf("listing %s: %w", dir, err))
	}
	return out
}
