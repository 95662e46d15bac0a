package bridge

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

func procBatch(pool *event.Pool, evs ...cnmsg.ProcEvent) *event.Batch {
	b := pool.Get()
	for _, ev := range evs {
		b.Add(&event.Record{HasProc: true, Proc: ev, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Enrich: event.EnrichPending, Targets: 1})
	}
	return b
}

// enrichNow runs one batch through the enricher synchronously.
func enrichNow(e *enricher, b *event.Batch) {
	b.Retain(1)
	b.StartEnrich()
	e.enrichBatch(b)
	b.WaitEnriched()
}

func TestEnrichGoneAndLive(t *testing.T) {
	e := newEnricher(EnrichOptions{CacheSize: 16}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := uint32(cmd.Process.Pid) // reaped: gone
	self := uint32(os.Getpid())
	pool := event.NewPool()
	b := procBatch(pool,
		cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: gone, TGID: gone},
		cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self, TGID: self},
		cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: self, TGID: self},
	)
	enrichNow(e, b)
	if r := b.Records[0]; r.Enrich != event.EnrichDone || r.Process == nil || !r.Process.Gone {
		t.Errorf("exec of a reaped pid: got %v %+v, want gone", r.Enrich, r.Process)
	}
	exe, _ := os.Executable()
	if r := b.Records[1]; r.Enrich != event.EnrichDone || r.Process == nil || r.Process.Exe != exe {
		t.Errorf("exec of self: got %v %+v, want exe %s", r.Enrich, r.Process, exe)
	}
	// The exit comes from the cache the exec filled, and forgets it.
	if r := b.Records[2]; r.Process == nil || r.Process.Exe != exe {
		t.Errorf("exit of self: got %+v, want the cached exec info", r.Process)
	}
	if e.cache.Len() != 0 {
		t.Errorf("cache has %d entries after the exit, want 0", e.cache.Len())
	}
	line := event.NewEncoder("h").AppendJSON(nil, &b.Records[0])
	if want := `"process":{"gone":true}`; !contains(line, want) {
		t.Errorf("line %s lacks %s", line, want)
	}
	b.Release()
}

// TestEnrichCacheBound: a 100 000-process storm (fork events, most
// without an exit) never grows the pid cache past its bound.
func TestEnrichCacheBound(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100 000 symlinks")
	}
	// A proc root where every pid resolves to one small fake process, so
	// that each fork is read successfully (and quickly) and cached.
	root := t.TempDir()
	tmpl := filepath.Join(root, "tmpl")
	os.Mkdir(tmpl, 0o755)
	for name, content := range map[string]string{
		"comm":    "storm\n",
		"cmdline": "storm\x00",
		"status":  "Name:\tstorm\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"cgroup":  "0::/storm\n",
	} {
		os.WriteFile(filepath.Join(tmpl, name), []byte(content), 0o644)
	}
	os.Symlink("/bin/true", filepath.Join(tmpl, "exe"))
	const storm = 100000
	for pid := 1; pid <= storm; pid++ {
		if err := os.Symlink("tmpl", filepath.Join(root, strconv.Itoa(pid))); err != nil {
			t.Fatal(err)
		}
	}
	const bound = 4096
	e := newEnricher(EnrichOptions{CacheSize: bound, ProcRoot: root}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	pool := event.NewPool()
	maxLen := 0
	for pid := uint32(1); pid <= storm; {
		var evs []cnmsg.ProcEvent
		for ; pid <= storm && len(evs) < event.MaxBatchRecords; pid++ {
			evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcFork, ChildPID: pid, ChildTGID: pid})
			if pid%3 == 0 { // a third of them exit again
				evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid})
			}
		}
		b := procBatch(pool, evs...)
		enrichNow(e, b)
		b.Release()
		maxLen = max(maxLen, e.cache.Len())
	}
	if maxLen > bound {
		t.Errorf("cache grew to %d entries, bound %d", maxLen, bound)
	}
	if got := e.cacheLen.Load(); got != int64(e.cache.Len()) || got == 0 {
		t.Errorf("cache gauge %d, cache %d", got, e.cache.Len())
	}
}

func TestEnrichQueueFullSkips(t *testing.T) {
	e := newEnricher(EnrichOptions{QueueSize: 1}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	pool := event.NewPool()
	self := uint32(os.Getpid())
	first := procBatch(pool, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self})
	second := procBatch(pool, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self})
	e.offer(first)  // fills the queue: nobody runs the enricher
	e.offer(second) // no room: goes out unenriched
	second.WaitEnriched()
	if r := second.Records[0]; r.Enrich != event.EnrichSkipped {
		t.Errorf("second batch: got %v, want skipped", r.Enrich)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.run(ctx) // drains: skipped
	first.WaitEnriched()
	if r := first.Records[0]; r.Enrich != event.EnrichSkipped {
		t.Errorf("first batch after shutdown: got %v, want skipped", r.Enrich)
	}
	first.Release()
	second.Release()
}

func contains(b []byte, s string) bool {
	return len(s) == 0 || len(b) >= len(s) && (string(b) == s || indexOf(string(b), s) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
