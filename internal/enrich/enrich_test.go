package enrich

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
func enrichNow(e *Enricher, b *event.Batch) {
	b.Retain(1)
	b.StartEnrich()
	e.enrichBatch(b, true, nil)
	b.WaitEnriched()
}

func TestEnrichGoneAndLive(t *testing.T) {
	e := New(Options{MaxEntries: 16, NoSeed: true}, prometheus.NewRegistry(), zaptest.NewLogger(t))
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
	if r := b.Records[0]; r.Enrich != event.EnrichDone || r.Enriched == nil || !r.Enriched.Gone {
		t.Errorf("exec of a reaped pid: got %v %+v, want gone", r.Enrich, r.Enriched)
	}
	exe, _ := os.Executable()
	if r := b.Records[1]; r.Enrich != event.EnrichDone || r.Enriched.Process == nil || r.Enriched.Process.Exe != exe {
		t.Errorf("exec of self: got %v %+v, want exe %s", r.Enrich, r.Enriched, exe)
	}
	// The exit comes from the table the exec filled, and leaves it.
	if r := b.Records[2]; r.Enriched.Process == nil || r.Enriched.Process.Exe != exe || !r.Enriched.HasDuration {
		t.Errorf("exit of self: got %+v, want the table's entry with a duration", r.Enriched)
	}
	if e.table.Len() != 0 {
		t.Errorf("table has %d entries after the exit, want 0", e.table.Len())
	}
	line := event.NewEncoder("h").AppendJSON(nil, &b.Records[0])
	if want := `"process":{"pid":` + strconv.Itoa(int(gone)) + `,"gone":true}`; !contains(line, want) {
		t.Errorf("line %s lacks %s", line, want)
	}
	b.Release()
}

// TestEnrichTableBound: a 100 000-process storm (forks, most without an
// exit) never grows the process table past its bound, and forks of a
// known parent read nothing from /proc.
func TestEnrichTableBound(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "1")
	os.Mkdir(dir, 0o755)
	for name, content := range map[string]string{
		"comm":    "storm\n",
		"cmdline": "storm\x00",
		"status":  "Name:\tstorm\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"cgroup":  "0::/storm\n",
		// Started at tick 1, before the storm's children.
		"stat": "1 (storm) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 1 100 1\n",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	os.Symlink("/bin/true", filepath.Join(dir, "exe"))
	const storm, bound = 100000, 4096
	reg := prometheus.NewRegistry()
	e := New(Options{MaxEntries: bound, ProcRoot: root}, reg, zaptest.NewLogger(t))
	e.seed()
	if e.table.Get(1) == nil {
		t.Fatal("pid 1 of the fake proc root was not seeded")
	}
	pool := event.NewPool()
	maxLen := 0
	for pid := uint32(2); pid <= storm; {
		var evs []cnmsg.ProcEvent
		for ; pid <= storm && len(evs) < event.MaxBatchRecords-1; pid++ {
			// Timestamps in the middle of a tick: no start read.
			evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 1, ParentTGID: 1, ChildPID: pid, ChildTGID: pid,
				TimestampNs: uint64(pid)*1e7 + 5e6 - uint64(e.off)})
			if pid%3 == 0 { // a third of them exit again
				evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid})
			}
		}
		b := procBatch(pool, evs...)
		enrichNow(e, b)
		for i := range b.Records {
			if r := &b.Records[i]; r.Enriched == nil || r.Enriched.Process == nil || r.Enriched.Process.Exe != "/usr/bin/true" && r.Enriched.Process.Exe != "/bin/true" {
				t.Fatalf("record %d: got %+v (process %+v), want the parent's image inherited", i, r.Enriched, r.Enriched.Process)
			}
		}
		b.Release()
		maxLen = max(maxLen, e.table.Len())
	}
	if maxLen > bound {
		t.Errorf("table grew to %d entries, bound %d", maxLen, bound)
	}
	if got := e.tableLen.Load(); got != int64(e.table.Len()) || got == 0 {
		t.Errorf("table gauge %d, table %d", got, e.table.Len())
	}
	if got := testutil.ToFloat64(e.read) + testutil.ToFloat64(e.startReads); got != 0 {
		t.Errorf("forks and exits read /proc %v times, want 0", got)
	}
}

// TestEnrichShutdownSkips: what is queued when the enricher stops goes out
// marked skipped.
func TestEnrichShutdownSkips(t *testing.T) {
	e := New(Options{QueueSize: 2, NoSeed: true}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	pool := event.NewPool()
	self := uint32(os.Getpid())
	first := procBatch(pool, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self, TGID: self})
	e.Offer(first, true, nil) // queued: nobody runs the enricher
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.Run(ctx) // drains: skipped
	first.WaitEnriched()
	if r := first.Records[0]; r.Enrich != event.EnrichSkipped {
		t.Errorf("batch after shutdown: got %v, want skipped", r.Enrich)
	}
	first.Release()
}

func TestRedact(t *testing.T) {
	pats := []*regexp.Regexp{regexp.MustCompile(`(?i)(?:password|token)=(\S+)`), regexp.MustCompile(`^--key=(.*)$`), regexp.MustCompile(`nogroup`)}
	for in, want := range map[string]string{
		"--password=hunter2":         "--password=*****",
		"a token=x b PASSWORD=y":     "a token=***** b PASSWORD=*****",
		"--key=abc":                  "--key=*****",
		"plain":                      "plain",
		"nogroup leaves this intact": "nogroup leaves this intact",
	} {
		if got := Redact(pats, in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
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
