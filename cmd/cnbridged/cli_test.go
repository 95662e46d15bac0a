package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestCLIExitCodes: every command's --help exits 0, usage errors exit 2,
// an invalid config exits 78, and the help lists every command.
func TestCLIExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listener:\n  groups: [99]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string // in stdout+stderr
	}{
		{[]string{"--help"}, 0, "Available Commands"},
		{[]string{"-h"}, 0, "Available Commands"},
		{[]string{"help"}, 0, "Available Commands"},
		{[]string{"run", "--help"}, 0, "--no-watch"},
		{[]string{"validate", "--help"}, 0, "--config"},
		{[]string{"check", "-h"}, 0, "--set"},
		{[]string{"stats", "--help"}, 0, "--interval"},
		{[]string{"health", "--help"}, 0, "--timeout"},
		{[]string{"emit", "--help"}, 0, "--idx"},
		{[]string{"version", "--help"}, 0, "Usage"},
		{[]string{"completion", "--help"}, 0, "bash"},
		{[]string{"man", "--help"}, 0, "DIR"},
		{[]string{"--version"}, 0, "cnbridged "},
		{[]string{"version"}, 0, "cnbridged "},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"validate", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"validate", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"emit", "--group", "7"}, 2, `required flag(s) "idx", "val" not set`},
		{[]string{"stats", "--interval", "soon"}, 2, "invalid argument"},
		{[]string{"man"}, 2, "one argument"},
		{[]string{"validate", "--config", bad}, 78, "invalid config"},
		{[]string{"--config", bad}, 78, "invalid config"},
		{[]string{"run", "--config", bad}, 78, "invalid config"},
		{[]string{"health", "--set", "metrics.listen=", "--set", "state_dir="}, 1, "metrics.listen is empty"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(c.args, &out, &out)
			if code != c.code {
				t.Errorf("exit got %d, want %d\n%s", code, c.code, out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out.String())
			}
		})
	}
}

// TestHelpListsEveryCommand: the root help names every visible command.
func TestHelpListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"run", "validate", "check", "stats", "health", "emit", "query", "version", "completion", "help"} {
		if !strings.Contains(out.String(), "\n  "+c+" ") {
			t.Errorf("help lacks command %q:\n%s", c, out.String())
		}
	}
	if strings.Contains(out.String(), "\n  man ") {
		t.Errorf("help lists the hidden man command:\n%s", out.String())
	}
}

// TestManAndCompletion: man pages are generated for every command, and the
// completion scripts are printed.
func TestManAndCompletion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	var out bytes.Buffer
	if code := run([]string{"man", dir}, &out, &out); code != 0 {
		t.Fatalf("man exit %d: %s", code, out.String())
	}
	for _, page := range []string{"cnbridged.1", "cnbridged-run.1", "cnbridged-validate.1", "cnbridged-health.1", "cnbridged-completion-bash.1", "cnbridged-query-lineage.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if !bytes.Contains(b, []byte(`.TH "CNBRIDGED" "1"`)) {
			t.Errorf("%s lacks the section 1 header:\n%.200s", page, b)
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out.Reset()
		if code := run([]string{"completion", sh}, &out, &out); code != 0 || !strings.Contains(out.String(), "cnbridged") {
			t.Errorf("completion %s: exit %d\n%.200s", sh, code, out.String())
		}
	}
}

// TestMetricsURL: a wildcard listen address is asked on loopback.
func TestMetricsURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9464": "http://127.0.0.1:9464",
		":9464":          "http://127.0.0.1:9464",
		"0.0.0.0:1":      "http://127.0.0.1:1",
		"[::]:2":         "http://[::1]:2",
		"[::1]:3":        "http://[::1]:3",
	} {
		got, err := metricsURL(in)
		if err != nil || got != want {
			t.Errorf("metricsURL(%q) got %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestHealth: health asks /readyz at metrics.listen and exits 0 on 200,
// 1 on anything else.
func TestHealth(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			http.Error(w, "not ready: connector socket not subscribed", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out bytes.Buffer
	if code := run([]string{"health", "--set", "metrics.listen=" + addr, "--set", "state_dir="}, &out, &out); code != 0 {
		t.Errorf("ready: exit got %d, want 0\n%s", code, out.String())
	}
	ready = false
	out.Reset()
	if code := run([]string{"health", "--set", "metrics.listen=" + addr, "--set", "state_dir="}, &out, &out); code != 1 || !strings.Contains(out.String(), "not subscribed") {
		t.Errorf("not ready: exit got %d, want 1 with the reason\n%s", code, out.String())
	}
	srv.Close()
	out.Reset()
	if code := run([]string{"health", "--set", "metrics.listen=" + addr, "--set", "state_dir="}, &out, &out); code != 1 {
		t.Errorf("no daemon: exit got %d, want 1\n%s", code, out.String())
	}
}

// TestStatsFromConfig: stats finds the daemon's metrics at metrics.listen
// of the config, handles an interval of 0 (one scrape, no rates, no NaN),
// and shows events left out by a route's events: list as filtered.
func TestStatsFromConfig(t *testing.T) {
	const metrics = `# TYPE cnbridged_messages_received_total counter
cnbridged_messages_received_total{idx="1",val="1"} 40
# TYPE cnbridged_messages_rejected_total counter
cnbridged_messages_rejected_total{reason="unrouted"} 3
# TYPE cnbridged_route_events_filtered_total counter
cnbridged_route_events_filtered_total 17
# TYPE cnbridged_sink_queue_capacity gauge
cnbridged_sink_queue_capacity{sink="out"} 100
# TYPE cnbridged_sink_messages_total counter
cnbridged_sink_messages_total{sink="out",result="sent"} 23
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(metrics))
	}))
	defer srv.Close()
	for _, interval := range []string{"0s", "10ms"} {
		var out bytes.Buffer
		code := run([]string{"stats", "--set", "metrics.listen=" + strings.TrimPrefix(srv.URL, "http://"), "--set", "state_dir=", "--interval", interval}, &out, &out)
		if code != 0 {
			t.Fatalf("--interval %s: exit %d\n%s", interval, code, out.String())
		}
		text := out.String()
		if strings.Contains(text, "NaN") || strings.Contains(text, "Inf") {
			t.Errorf("--interval %s: output has NaN or Inf:\n%s", interval, text)
		}
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "FILTERED") {
				if f := strings.Fields(lines[i+1]); len(f) != 3 || f[1] != "17" {
					t.Errorf("--interval %s: filtered row %q, want route events 17", interval, lines[i+1])
				}
			}
			if strings.HasPrefix(l, "1.1") {
				wantRate := "0"
				if interval == "0s" {
					wantRate = "-"
				}
				if f := strings.Fields(l); len(f) < 3 || f[2] != wantRate {
					t.Errorf("--interval %s: id row %q, want rate %s", interval, l, wantRate)
				}
			}
		}
		if !strings.Contains(text, "FILTERED") {
			t.Errorf("--interval %s: no FILTERED section:\n%s", interval, text)
		}
	}
}

// TestVersionFromLdflags: the documented build line sets the version and
// commit that version and --version print, with the Go version.
func TestVersionFromLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cnbridged")
	out, err := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=v9.8.7 -X main.commit=0123abc", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "cnbridged v9.8.7 (commit 0123abc, " + runtime.Version() + ")\n"
	for _, arg := range []string{"version", "--version"} {
		got, err := exec.Command(bin, arg).Output()
		if err != nil || string(got) != want {
			t.Errorf("%s got %q, %v; want %q", arg, got, err, want)
		}
	}
}

// TestFatalErrorPrintedOnce: a run that fails at start (a file sink that
// cannot be created) exits 1 with the error logged once, on one line,
// without a stack trace, and not printed a second time.
func TestFatalErrorPrintedOnce(t *testing.T) {
	cntest.NeedRoot(t, "opens the connector socket")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	body := "log:\n  format: json\nmetrics:\n  listen: \"\"\ntap:\n  socket: \"\"\nsinks:\n  f:\n    type: file\n    path: " + filepath.Join(dir, "file", "x.jsonl") + "\nroutes:\n  - match: \"1.1\"\n    sinks: [f]\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(daemonBinary(t), "--config", cfg)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: got %v, want 1\n%s", err, stderr.String())
	}
	n := strings.Count(stderr.String(), "not a directory")
	if n != 1 {
		t.Errorf("the error appears %d times, want once:\n%s", n, stderr.String())
	}
	if strings.Contains(stderr.String(), "stacktrace") {
		t.Errorf("the log carries a stack trace:\n%s", stderr.String())
	}
}
