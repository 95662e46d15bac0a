package enrich

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// TestExecReadersParallel: a burst of execs read by several goroutines
// describes every process exactly as one reader does, in the batch's
// order, each record with its own process (not a neighbour's), and uses
// the extra readers (run with -race, it also checks they share nothing).
func TestExecReadersParallel(t *testing.T) {
	const n = 40
	var pids []uint32
	for i := range n {
		// Each with its own arguments, so that a mix-up shows.
		cmd := exec.Command("sleep", fmt.Sprintf("300.%03d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	type desc struct {
		PID     uint32
		Exe     string
		Cmdline []string
		Comm    string
		Cwd     string
		Cgroup  string
		Gone    bool
	}
	describe := func(readers int) []desc {
		e := New(Options{MaxEntries: 1024, NoSeed: true, ExecReaders: readers}, prometheus.NewRegistry(), zaptest.NewLogger(t))
		for _, pid := range pids {
			if o, ok := e.observe(pid); ok {
				e.table.Seed(&o)
			} else {
				t.Fatalf("pid %d: not readable", pid)
			}
		}
		var evs []cnmsg.ProcEvent
		for _, pid := range pids {
			evs = append(evs, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid})
		}
		b := procBatch(event.NewPool(), evs...)
		defer b.Release()
		enrichNow(e, b)
		if got, want := testutil.ToFloat64(e.execBursts), float64(min(readers-1, 1)); got != want {
			t.Errorf("readers %d: %v bursts read in parallel, want %v", readers, got, want)
		}
		var out []desc
		for i := range b.Records {
			r := &b.Records[i]
			if r.Enrich != event.EnrichDone || r.Enriched == nil || r.Enriched.Process == nil {
				t.Fatalf("readers %d, record %d: %v %+v, want enriched", readers, i, r.Enrich, r.Enriched)
			}
			p := r.Enriched.Process
			out = append(out, desc{p.PID, p.Exe, p.Cmdline, p.Comm, p.Cwd, p.Cgroup, r.Enriched.Gone})
		}
		return out
	}
	one := describe(1)
	for i, d := range one {
		if d.PID != pids[i] || len(d.Cmdline) != 2 || d.Cmdline[1] != fmt.Sprintf("300.%03d", i) || d.Comm != "sleep" || d.Gone {
			t.Fatalf("one reader, record %d: %+v", i, d)
		}
	}
	for _, readers := range []int{2, 4} {
		if diff := cmp.Diff(one, describe(readers)); diff != "" {
			t.Errorf("%d readers differ from one (-one +parallel):\n%s", readers, diff)
		}
	}
}
