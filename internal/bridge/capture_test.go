package bridge

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// allowFiles makes c's reads stop after n files, whatever the clock says.
func allowFiles(c *capturer, n int) {
	c.more = func() bool {
		n--
		return n >= 0
	}
}

// TestCapturer: what the reader reads of an exec as it receives it, and
// how it says what it left: the fields it did not get to are named in
// Late (for the enricher to read), those a process that went took with
// it in Missing; a budget that has run out, or is 0, reads nothing.
func TestCapturer(t *testing.T) {
	full := proctable.Observed{PID: 1, Exe: "/bin/true", Cmdline: []string{"init"}, Comm: "init", Cgroup: "/"}
	tests := []struct {
		name   string
		budget time.Duration
		files  int // files the reads may take; -1: as the budget allows
		pid    uint32
		want   *proctable.Observed // nil: nothing read
		result string
	}{
		{name: "everything", budget: time.Second, files: 5, pid: 1, want: &full, result: "received"},
		{name: "the budget runs out after cmdline and exe", budget: time.Second, files: 2, pid: 1,
			want:   &proctable.Observed{PID: 1, Exe: "/bin/true", Cmdline: []string{"init"}, Late: []string{"cwd", "cgroup", "comm"}},
			result: "partial"},
		{name: "the budget had run out", budget: time.Second, files: 0, pid: 1, result: "late"},
		{name: "no budget", budget: 0, files: -1, pid: 1, result: "late"},
		{name: "gone before the reads", budget: time.Second, files: 5, pid: 4242,
			want:   &proctable.Observed{PID: 4242, Gone: true, Missing: []string{"cmdline", "exe", "cwd", "cgroup", "comm"}},
			result: "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapturer(EnrichOptions{ProcRoot: fakeProc(t), CaptureBudget: tt.budget}, prometheus.NewRegistry())
			defer c.close()
			if tt.files >= 0 {
				allowFiles(c, tt.files)
			}
			c.begin(time.Now())
			before := monotonicNs()
			got := c.exec(tt.pid, uint64(before))
			after := monotonicNs()
			if tt.want == nil {
				if got != nil {
					t.Fatalf("got a capture %+v, want none", got)
				}
			} else {
				if got == nil {
					t.Fatal("got no capture")
				}
				if diff := cmp.Diff(*tt.want, got.Observed); diff != "" {
					t.Errorf("captured (-want +got):\n%s", diff)
				}
				if got.At < before || got.At > after {
					t.Errorf("At %d outside the call [%d, %d]", got.At, before, after)
				}
			}
			for _, r := range []string{"received", "partial", "late", "gone", "error"} {
				want := 0.0
				if r == tt.result {
					want = 1
				}
				if n := testutil.ToFloat64(c.results.WithLabelValues(r)); n != want {
					t.Errorf("cnbridged_enrich_capture_total{result=%q} = %v, want %v", r, n, want)
				}
			}
		})
	}
}

// TestCapturerBudget: the budget counts from the batch's receipt: a batch
// received longer ago than the budget reads nothing, and within it every
// exec is read (the clock, not a stub, decides here).
func TestCapturerBudget(t *testing.T) {
	c := newCapturer(EnrichOptions{ProcRoot: fakeProc(t), CaptureBudget: 50 * time.Millisecond}, prometheus.NewRegistry())
	defer c.close()
	c.begin(time.Now().Add(-time.Second))
	if got := c.exec(1, 0); got != nil {
		t.Errorf("a batch received a second ago with a 50 ms budget: got %+v, want nothing read", got.Observed)
	}
	c.begin(time.Now())
	if got := c.exec(1, 0); got == nil || len(got.Observed.Late) != 0 {
		t.Errorf("a batch just received: got %+v, want every field read", got)
	}
}

// TestCapturerOvertaken: an exec event stamped before the last capture
// of its slot ended counts as overtaking it (its image may show in that
// read); one stamped after does not.
func TestCapturerOvertaken(t *testing.T) {
	c := newCapturer(EnrichOptions{ProcRoot: fakeProc(t), CaptureBudget: time.Second}, prometheus.NewRegistry())
	defer c.close()
	c.begin(time.Now())
	first := c.exec(1, uint64(monotonicNs()))
	if first == nil || first.Overtaken != 0 {
		t.Fatalf("first capture: %+v, want one with Overtaken 0", first)
	}
	// A later exec of pid 1 whose event the kernel stamped before the
	// first read ended.
	second := c.exec(1, uint64(first.At-1))
	if got := c.overtakenOf(1); got != 1 || second.Overtaken != 1 {
		t.Errorf("after an exec stamped before the read: overtaken %d (capture %d), want 1", got, second.Overtaken)
	}
	if got := c.overtakenOf(1 + execSlots); got != 1 {
		t.Errorf("overtaken of a pid sharing the slot = %d, want 1 (slots are shared)", got)
	}
	c.exec(1, uint64(second.At+1))
	if got := c.overtakenOf(1); got != 1 {
		t.Errorf("after an exec stamped after the last read: overtaken %d, want still 1", got)
	}
	if got := c.overtakenOf(2); got != 0 {
		t.Errorf("overtaken of another slot = %d, want 0", got)
	}
}

// TestFieldNameSets: every set of exec fields has its names, in read
// order, and fieldsOf inverts them.
func TestFieldNameSets(t *testing.T) {
	names := fieldNameSets()
	for f := range names {
		if got := fieldsOf(names[f]); got != procinfo.Fields(f) {
			t.Errorf("fieldsOf(%v) = %v, want %v", names[f], got, f)
		}
	}
	if got := names[procinfo.FieldExe|procinfo.FieldCmdline]; !cmp.Equal(got, []string{"cmdline", "exe"}) {
		t.Errorf("names of exe and cmdline = %v, want [cmdline exe]", got)
	}
}

// TestHandleCapturesBeforeHandOff: Handle, on the reader's goroutine,
// reads /proc for each exec as it handles it, in the batch's order, and
// the batch reaches the enricher's queue with the reads in its records:
// two live processes, each with its own arguments, in one batch.
func TestHandleCapturesBeforeHandOff(t *testing.T) {
	var pids []uint32
	for _, arg := range []string{"300.001", "300.002"} {
		cmd := exec.Command("sleep", arg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	waitExeced(t, pids...)
	pat, _ := router.ParsePattern("1.1")
	b := New(&Plan{Table: router.New([]router.Route{{Match: pat, Sinks: 1, Enrich: true}}), Sinks: []Target{&retirable{}}, Enrich: true},
		seqtrack.Options{}, EnrichOptions{NoSeed: true, CaptureBudget: time.Second}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	defer b.Close()
	var dgs []cnmsg.Datagram
	for i, pid := range pids {
		dgs = append(dgs, cnmsg.Datagram{Data: cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: uint32(i)},
			cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid, TimestampNs: uint64(monotonicNs())}))})
	}
	b.Handle(dgs, time.Now())
	// The enricher is not running: the batch waits in its queue as the
	// reader handed it on.
	var batch *event.Batch
	select {
	case it := <-b.enr.q:
		batch = it.b
	default:
		t.Fatal("no batch in the enricher's queue")
	}
	defer batch.Release()
	if len(batch.Records) != 2 {
		t.Fatalf("%d records, want 2", len(batch.Records))
	}
	for i, r := range batch.Records {
		c := r.Capture
		if c == nil {
			t.Fatalf("record %d (pid %d): no capture", i, pids[i])
		}
		if got, want := c.Observed.Cmdline, []string{"sleep", fmt.Sprintf("300.%03d", i+1)}; c.Observed.PID != pids[i] || !cmp.Equal(got, want) || len(c.Observed.Late) != 0 {
			t.Errorf("record %d: captured pid %d cmdline %q late %v, want pid %d cmdline %q and nothing late",
				i, c.Observed.PID, got, c.Observed.Late, pids[i], want)
		}
	}
	if !(batch.Records[0].Capture.At <= batch.Records[1].Capture.At) {
		t.Errorf("captures out of the batch's order: %d then %d", batch.Records[0].Capture.At, batch.Records[1].Capture.At)
	}
	if n := testutil.ToFloat64(b.cap.received); n != 2 {
		t.Errorf("captures received = %v, want 2", n)
	}
	batch.EnrichDone()
}

// waitExeced waits until each pid's command line is its new image's (a
// child started by os/exec has its exec a moment after Start returns).
func waitExeced(t *testing.T, pids ...uint32) {
	t.Helper()
	for _, pid := range pids {
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.HasPrefix(string(b), "sleep\x00") || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}
