package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/ratelog"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
	"github.com/cnbridged/cnbridged/internal/statefile"
)

// captureSink keeps the kinds of the records offered to it.
type captureSink struct {
	slot  int
	kinds []event.Kind
	gaps  []event.Gap
}

func (c *captureSink) Offer(b *event.Batch) {
	for _, r := range b.Records {
		c.kinds = append(c.kinds, r.Kind)
		if r.Gap != nil {
			c.gaps = append(c.gaps, *r.Gap)
		}
	}
}
func (c *captureSink) Slot() int { return c.slot }

func traceBridge(t *testing.T, sink *captureSink) *bridge.Bridge {
	t.Helper()
	cfg := planConfig()
	p, err := compilePlan(cfg, map[string]slotted{"a": sink, "b": fakeSink{1}}, nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return bridge.New(p, seqtrack.Options{}, enrich.New(enrich.Options{NoSeed: true}, reg, zap.NewNop()), reg, zap.NewNop())
}

func bootID(t *testing.T) string {
	id, err := procinfo.BootID("")
	if err != nil {
		t.Skipf("no boot id: %v", err)
	}
	return id
}

// TestRestartTraceStates: a missing, other-boot or corrupt trace is no
// error: one log line says why, and no gap record goes out; a trace of
// this boot sends one gap record to the sinks of the routes with loss
// markers for 1.1, from the saved time to now.
func TestRestartTraceStates(t *testing.T) {
	boot := bootID(t)
	saved := time.Now().Add(-time.Minute).Round(0)
	tests := []struct {
		name    string
		state   string // state.json content; "" for none
		wantGap bool
		wantLog string
	}{
		{"missing", "", false, "no restart trace from a previous daemon of this boot"},
		{"other boot", string(statefile.Encode(statefile.State{BootID: "11111111-2222-3333-4444-555555555555", Time: saved})), false, "saved by another boot"},
		{"corrupt", "{not json", false, "corrupt"},
		{"this boot", string(statefile.Encode(statefile.State{BootID: boot, Time: saved, LastPID: 1})), true, "restarted in the same boot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.state != "" {
				os.WriteFile(filepath.Join(dir, statefile.StateName), []byte(tt.state), 0o600)
			}
			sink := &captureSink{slot: 0}
			core, logs := observer.New(zap.InfoLevel)
			now := time.Now()
			tr := openRestartTrace(dir, traceBridge(t, sink), zap.New(core), now)
			if tr == nil {
				t.Fatal("openRestartTrace returned nil for a usable directory")
			}
			tr.close(true, now)
			if n := logs.Len(); n != 1 {
				t.Errorf("got %d log lines, want 1: %v", n, logs.All())
			} else if e := logs.All()[0]; !strings.Contains(e.Message+" "+fieldsText(e), tt.wantLog) {
				t.Errorf("log line %q %v does not mention %q", e.Message, e.ContextMap(), tt.wantLog)
			}
			if got := len(sink.gaps); (got == 1) != tt.wantGap || got > 1 {
				t.Fatalf("gap records got %d, want %v", got, tt.wantGap)
			}
			if tt.wantGap {
				g := sink.gaps[0]
				if g.From != saved.UnixNano() || g.To != now.UnixNano() || g.CleanStop {
					t.Errorf("gap got %+v, want from %d to %d, not clean", g, saved.UnixNano(), now.UnixNano())
				}
			}
			// The clean stop's state is this boot's, clean.
			st, err := statefile.Read(dir)
			if err != nil || st.BootID != boot || !st.Clean {
				t.Errorf("state after a clean stop got %+v, %v; want this boot, clean", st, err)
			}
		})
	}
}

// TestRestartTraceOneDaemonPerDir: a second daemon on the same state_dir
// runs without a trace instead of sharing one.
func TestRestartTraceOneDaemonPerDir(t *testing.T) {
	bootID(t)
	dir := t.TempDir()
	first := openRestartTrace(dir, traceBridge(t, &captureSink{}), zap.NewNop(), time.Now())
	if first == nil {
		t.Fatal("first daemon got no trace")
	}
	defer first.close(false, time.Now())
	if second := openRestartTrace(dir, traceBridge(t, &captureSink{}), zap.NewNop(), time.Now()); second != nil {
		second.close(false, time.Now())
		t.Fatal("a second daemon got the same state_dir's trace")
	}
}

func fieldsText(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k + "=")
		if s, ok := v.(string); ok {
			b.WriteString(s)
		} else if err, ok := v.(error); ok {
			b.WriteString(err.Error())
		}
		b.WriteString(" ")
	}
	return b.String()
}

// TestRestartTraceSaveWarnsOncePerMinute: periodic saves that fail (here:
// state_dir is a file) warn once a minute, not every stateInterval; the
// final save of a clean stop always says it failed.
func TestRestartTraceSaveWarnsOncePerMinute(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	tr := &restartTrace{dir: notDir, log: zap.New(core), saveErrs: ratelog.New(time.Minute, 1)}
	now := time.Now()
	for i := range 5 {
		tr.save(false, now.Add(time.Duration(i)*stateInterval))
	}
	if n := logs.Len(); n != 1 {
		t.Errorf("5 failed saves in %s logged %d warnings, want 1", 4*stateInterval, n)
	}
	tr.save(true, now.Add(5*stateInterval))
	if n := logs.Len(); n != 2 {
		t.Errorf("the clean stop's failed save: %d warnings in all, want 2", n)
	}
}

// TestReadRuntime: the running daemon's pid and metrics address are read
// from its state_dir while it holds the lock; a clean stop, a daemon that
// died (its pid no longer holds the lock) and a trace of another boot say
// so instead.
func TestReadRuntime(t *testing.T) {
	boot := bootID(t)
	dir := t.TempDir()
	tr := openRestartTrace(dir, traceBridge(t, &captureSink{}), zap.NewNop(), time.Now())
	if tr == nil {
		t.Fatal("no trace")
	}
	tr.setMetrics("127.0.0.1:9464")
	rt, err := ReadRuntime(dir)
	if err != nil || rt.PID != os.Getpid() || rt.Metrics != "127.0.0.1:9464" {
		t.Errorf("running: got %+v, %v; want pid %d and 127.0.0.1:9464", rt, err, os.Getpid())
	}
	tr.close(true, time.Now())
	if _, err := ReadRuntime(dir); err == nil || !strings.Contains(err.Error(), "stopped at") {
		t.Errorf("after a clean stop: got %v, want it to say the daemon stopped", err)
	}
	// A SIGKILLed daemon: its last save is not clean, and nobody holds
	// the lock.
	if err := statefile.Write(dir, statefile.State{BootID: boot, Time: time.Now(), PID: os.Getpid(), Metrics: "127.0.0.1:9464"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRuntime(dir); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("after a crash: got %v, want it to say the daemon is gone", err)
	}
	if err := statefile.Write(dir, statefile.State{BootID: "11111111-2222-3333-4444-555555555555", Time: time.Now(), PID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRuntime(dir); err == nil || !strings.Contains(err.Error(), "another boot") {
		t.Errorf("another boot: got %v", err)
	}
}
