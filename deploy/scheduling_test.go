package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/config"
)

// TestUnitGrantsReaderPriority: the packaged config asks for a realtime
// reader thread (listener.reader_priority), used while a route enriches,
// and the unit with its enrich drop-in (deploy/systemd/enrich.conf) lets
// the dynamic user take it: RLIMIT_RTPRIO at least that
// priority (an unprivileged thread may raise itself to SCHED_FIFO up to
// it), no RestrictRealtime=, and sched_setattr back in the system call
// filter after the @resources denial. Without any of them the daemon
// runs, but warns and reads at normal priority.
func TestUnitGrantsReaderPriority(t *testing.T) {
	cfg, err := config.Load(config.Options{Path: "../configs/cnbridged.yaml", DefaultPath: filepath.Join(t.TempDir(), "none.yaml")})
	if err != nil {
		t.Fatalf("load the packaged config: %v", err)
	}
	prio := cfg.Listener.ReaderPriority
	if prio == 0 {
		t.Skip("the packaged config asks for no realtime reader")
	}
	dropIn, err := os.ReadFile("systemd/enrich.conf")
	if err != nil {
		t.Fatalf("read the enrich drop-in: %v", err)
	}
	entries := append(parseUnit(t, readUnit(t)), parseUnit(t, dropIn)...)
	// A drop-in's value replaces the unit's for these keys.
	if v := serviceValues(entries, "ProtectProc"); len(v) == 0 || v[len(v)-1] != "default" {
		t.Errorf("ProtectProc=%q after the drop-in, want default last: the enricher reads every process", v)
	}
	limit := serviceValues(entries, "LimitRTPRIO")
	if n, err := strconv.Atoi(strings.TrimSpace(strings.Join(limit, ""))); len(limit) != 1 || err != nil || n < prio {
		t.Errorf("LimitRTPRIO=%q, want one value of at least listener.reader_priority (%d)", limit, prio)
	}
	if v := serviceValues(entries, "RestrictRealtime"); len(v) > 0 && !isFalse(v[len(v)-1]) {
		t.Errorf("RestrictRealtime=%s last refuses the reader's SCHED_FIFO", v[len(v)-1])
	}
	filters := serviceValues(entries, "SystemCallFilter")
	denied := slices.IndexFunc(filters, func(f string) bool {
		return strings.HasPrefix(f, "~") && slices.Contains(strings.Fields(strings.TrimPrefix(f, "~")), "@resources")
	})
	allowed := slices.IndexFunc(filters, func(f string) bool {
		return !strings.HasPrefix(f, "~") && slices.Contains(strings.Fields(f), "sched_setattr")
	})
	if denied >= 0 && allowed < denied {
		t.Errorf("SystemCallFilter lines %q: sched_setattr must be allowed after the @resources denial", filters)
	}
}
