package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/requests"
)

// TestJoinRightsLines: check's CAP_NET_ADMIN line and run's line say which
// case holds, for every answer the probe can give; where the join cannot
// succeed, run stops before starting anything, with the fix.
func TestJoinRightsLines(t *testing.T) {
	unknown := errors.New("capset: operation not permitted")
	withRequests := &config.Config{Requests: []requests.Config{{Subject: "req.x"}}}
	tests := []struct {
		name     string
		r        listener.JoinRights
		cfg      *config.Config
		check    string // check's line starts with this
		checkHas string
		level    zapcore.Level // run's line
		runHas   string
	}{
		{"held, kernel refuses others", listener.JoinRights{CapNetAdmin: true, Unprivileged: listener.JoinRefused}, nil,
			"ok   CAP_NET_ADMIN", "held: this kernel lets only CAP_NET_ADMIN join", zapcore.InfoLevel, "connector join rights"},
		{"held, kernel lets anyone join", listener.JoinRights{CapNetAdmin: true, Unprivileged: listener.JoinAllowed}, nil,
			"ok   CAP_NET_ADMIN", "held: this kernel lets sockets without CAP_NET_ADMIN join", zapcore.InfoLevel, "connector join rights"},
		{"held, probe cannot shed it", listener.JoinRights{CapNetAdmin: true, Err: unknown}, nil,
			"ok   CAP_NET_ADMIN", "is unknown (capset: operation not permitted)", zapcore.InfoLevel, "connector join rights"},
		{"not held, kernel refuses", listener.JoinRights{Unprivileged: listener.JoinRefused}, nil,
			"FAIL CAP_NET_ADMIN", "not held, and this kernel lets only CAP_NET_ADMIN join", zapcore.ErrorLevel, "cannot join the connector's groups"},
		{"not held, kernel allows", listener.JoinRights{Unprivileged: listener.JoinAllowed}, nil,
			"warn CAP_NET_ADMIN", "not held: subscribing works (this kernel lets sockets without", zapcore.InfoLevel, "connector join rights"},
		{"not held, kernel allows, requests configured", listener.JoinRights{Unprivileged: listener.JoinAllowed}, withRequests,
			"FAIL CAP_NET_ADMIN", "connector requests", zapcore.InfoLevel, "connector join rights"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &checker{out: &out}
			checkJoinRights(c, tt.cfg, tt.r, 212992)
			if !strings.HasPrefix(out.String(), tt.check) || !strings.Contains(out.String(), tt.checkHas) {
				t.Errorf("check printed %q, want %q… with %q", out.String(), tt.check, tt.checkHas)
			}
			if c.failed != strings.HasPrefix(tt.check, "FAIL") {
				t.Errorf("check failed = %v after %q", c.failed, out.String())
			}
			// run stops first (ErrorLevel) or logs the case once running.
			err := joinRefusal(tt.r)
			if (err != nil) != (tt.level == zapcore.ErrorLevel) || err != nil && !strings.Contains(err.Error(), tt.runHas) ||
				err != nil && !strings.Contains(err.Error(), "grant CAP_NET_ADMIN") {
				t.Errorf("joinRefusal: %v; want an error with %q and the fix: %v", err, tt.runHas, tt.level == zapcore.ErrorLevel)
			}
			if err != nil {
				return
			}
			core, logs := observer.New(zapcore.DebugLevel)
			logJoinRights(zap.New(core), tt.r)
			all := logs.All()
			if len(all) != 1 {
				t.Fatalf("run logged %d lines, want 1: %v", len(all), all)
			}
			e := all[0]
			if e.Level != tt.level || !strings.Contains(e.Message, tt.runHas) {
				t.Errorf("run logged %s %q, want %s with %q", e.Level, e.Message, tt.level, tt.runHas)
			}
			f := e.ContextMap()
			if f["cap_net_admin"] != tt.r.CapNetAdmin || f["unprivileged_join"] != tt.r.Unprivileged.String() {
				t.Errorf("run's fields %v do not say the case %+v", f, tt.r)
			}
		})
	}
}

// TestHidePID reads the hidepid option of /proc from mountinfo lines as
// the kernel writes them (the super options after " - ").
func TestHidePID(t *testing.T) {
	for _, tt := range []struct{ name, mountinfo, want string }{
		{"host /proc", "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n", ""},
		{"ProtectProc=invisible", "400 383 0:60 / /proc rw,nosuid,nodev,noexec,relatime shared:157 - proc proc rw,hidepid=invisible\n", "invisible"},
		{"numeric, no optional fields", "30 20 0:5 / /proc rw - proc proc rw,hidepid=2,gid=4\n", "2"},
		{"hidepid off", "30 20 0:5 / /proc rw - proc proc rw,hidepid=0\n", ""},
		{"another mount's option", "30 20 0:5 / /proc rw - proc proc rw\n31 30 0:6 / /proc/sys/fs/binfmt_misc rw - binfmt_misc x rw,hidepid=2\n", ""},
		{"procfs elsewhere only", "31 20 0:6 / /mnt/proc rw - proc proc rw,hidepid=invisible\n", ""},
	} {
		if got := hidePID([]byte(tt.mountinfo)); got != tt.want {
			t.Errorf("%s: hidePID got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestProcVisibilityWarning: run warns at start when routes enrich under a
// /proc that hides other users' processes, and only then.
func TestProcVisibilityWarning(t *testing.T) {
	enrich := &config.Config{Routes: []config.Route{{Match: "1.1"}, {Match: "1.1", Enrich: true}}}
	plain := &config.Config{Routes: []config.Route{{Match: "1.1"}}}
	for _, tt := range []struct {
		name    string
		cfg     *config.Config
		hidepid string
		warn    bool
	}{
		{"enrich, hidden", enrich, "invisible", true},
		{"enrich, visible", enrich, "", false},
		{"no enrich, hidden", plain, "invisible", false},
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		logProcVisibility(zap.New(core), tt.cfg, tt.hidepid)
		got := logs.FilterMessageSnippet("ProtectProc=default").Len()
		if (got == 1) != tt.warn || logs.Len() != got {
			t.Errorf("%s: logged %v, want the warning: %v", tt.name, logs.All(), tt.warn)
		}
	}
}

// TestRunJoinRights: run as uid 65534 without capabilities. Where this
// kernel refuses such a join (probed), run starts nothing and its first
// line is the cause, at error level, with the fix; where it lets anyone
// join, run starts and says so once running.
func TestRunJoinRights(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("needs setpriv (util-linux): %v", err)
	}
	dir, err := os.MkdirTemp("", "cnbridged-rights-") // not t.TempDir: uid 65534 writes here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte("sinks:\n  out: {type: stdout}\nroutes:\n  - {match: \"1.1\", sinks: [out]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	argv := append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		daemonBinary(t)}, daemonArgs(dir, path, addr)...)
	switch r := listener.ProbeJoin(); r.Unprivileged {
	case listener.JoinRefused:
		out, err := exec.Command("setpriv", argv...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit: got %v, want 1\n%s", err, out)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		var l map[string]any
		if err := json.Unmarshal([]byte(first), &l); err != nil {
			t.Fatalf("first line is not JSON: %v\n%s", err, out)
		}
		msg, _ := l["error"].(string)
		if l["level"] != "error" || l["msg"] != "cannot start" || l["stage"] != "listener" ||
			!strings.Contains(msg, "lets only CAP_NET_ADMIN join") || !strings.Contains(msg, "AmbientCapabilities=CAP_NET_ADMIN") {
			t.Errorf("first line: got %s, want the refused join at error level with the fix", first)
		}
		if strings.Contains(string(out), "sink started") {
			t.Errorf("run started sinks though it cannot join:\n%s", out)
		}
	case listener.JoinAllowed:
		p := newProc(t, exec.Command("setpriv", argv...), dir, path, addr)
		p.cmd.Stdout = io.Discard
		p.launch()
		cntest.WaitFor(t, 10*time.Second, "the join rights line", func() bool {
			return strings.Contains(p.stderr.String(), `"msg":"connector join rights","cap_net_admin":false,"unprivileged_join":"allowed"`)
		})
		p.stop()
	default:
		t.Fatalf("cannot tell whether this kernel lets sockets without CAP_NET_ADMIN join: %+v", r)
	}
}
