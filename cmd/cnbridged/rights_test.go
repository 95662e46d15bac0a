package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// TestJoinRightsLines: check's CAP_NET_ADMIN line and run's start-up line
// say which case holds, for every answer the probe can give.
func TestJoinRightsLines(t *testing.T) {
	unknown := errors.New("capset: operation not permitted")
	withRequests := &config.Config{Requests: []config.Request{{Subject: "req.x"}}}
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
			"FAIL CAP_NET_ADMIN", "not held, and this kernel lets only CAP_NET_ADMIN join", zapcore.WarnLevel, "cannot join the connector's groups"},
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
