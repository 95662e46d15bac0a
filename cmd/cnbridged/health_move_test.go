package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestHealthAfterMetricsMove: health -c and stats -c reach the running
// daemon after a reload changed metrics.listen (a restart-only key): the
// daemon's state_dir says where it listens. Once it has stopped, health
// says every address it tried and why the state named none.
func TestHealthAfterMetricsMove(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	dir := t.TempDir()
	old, moved := freePort(t), freePort(t)
	config := func(listen string) string {
		return "metrics: {listen: \"" + listen + "\"}\ntap: {socket: \"\"}\nstate_dir: " + filepath.Join(dir, "state") +
			"\nlog: {format: json}\nsinks:\n  out: {type: file, path: " + filepath.Join(dir, "events.jsonl") + "}\nroutes:\n  - {match: \"1.1\", sinks: [out]}\n"
	}
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(config(old)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProc(t, exec.Command(daemonBinary(t), "run", "--config", path), dir, path, old)
	p.launch()
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		cmd := exec.Command(daemonBinary(t), args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String(), errOut.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errOut.String()
	}
	if code, out, errOut := cli("health", "-c", path); code != 0 || out != "ready\n" {
		t.Fatalf("before the reload: exit %d, %q %q; want 0 and ready", code, out, errOut)
	}

	writeAtomic(t, path, config(moved))
	cntest.WaitFor(t, 10*time.Second, "a successful reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	pid := strconv.Itoa(p.cmd.Process.Pid)
	note := "the running daemon (pid " + pid + ") serves metrics on " + old + "; metrics.listen of " + path + ` is "` + moved + `", which applies after a restart`
	code, out, errOut := cli("health", "-c", path)
	if code != 0 || out != "ready\n" || !strings.Contains(errOut, note) {
		t.Errorf("after the reload: health exit %d, %q, %q; want 0, ready and the note %q", code, out, errOut, note)
	}
	code, out, errOut = cli("stats", "-c", path, "--interval", "0")
	if code != 0 || !strings.Contains(out, "SINK") || !strings.Contains(out, "out ") {
		t.Errorf("after the reload: stats exit %d:\n%s%s", code, out, errOut)
	}

	p.stop()
	code, _, errOut = cli("health", "-c", path)
	for _, want := range []string{"not healthy: no answer from http://" + moved + "/readyz (metrics.listen of " + path + "): ",
		"connection refused", "no running daemon recorded: " + filepath.Join(dir, "state", "state.json") + ": its daemon (pid " + pid + ") stopped at "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("after the stop: health exit %d, %q; want it to say %q", code, errOut, want)
		}
	}
	if code != 1 {
		t.Errorf("after the stop: health exit %d, want 1", code)
	}
}
