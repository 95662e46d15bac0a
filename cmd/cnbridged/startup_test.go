package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFatalStartLoggedFirst: a stage that cannot start is the first log
// line, at error level, with its cause; the stop summary stays the last
// line, marked fatal, and the error is not printed again.
func TestFatalStartLoggedFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte("sinks:\n  f: {type: file, path: /proc/nope/events.jsonl}\nroutes:\n  - {match: \"1.1\", sinks: [f]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemonBinary(t), daemonArgs(dir, path, "127.0.0.1:0")...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: got %v, want 1\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var first, last map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("first line is not JSON: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	const cause = "sinks.f: file sink: mkdir /proc/nope"
	if first["level"] != "error" || first["msg"] != "cannot start" || first["stage"] != "sinks" || !strings.HasPrefix(first["error"].(string), cause) {
		t.Errorf("first line: got %v, want level error, msg \"cannot start\", stage sinks and an error starting %q", lines[0], cause)
	}
	if last["msg"] != "cnbridged stopped" || last["fatal"] != true {
		t.Errorf("last line: got %v, want the stop summary, fatal", lines[len(lines)-1])
	}
	if n := strings.Count(string(out), cause); n != 1 {
		t.Errorf("the cause appears %d times, want once (the first line):\n%s", n, out)
	}
}
