package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// seqWatcher is the test's own process-events listener: it sees every
// message the kernel numbers while it listens, by CPU.
type seqWatcher struct {
	mu   sync.Mutex
	seqs map[uint32]map[uint32]bool // cpu → seqs
	exec map[uint32][2]uint32       // pid → cpu, seq of its exec
	stop context.CancelFunc
	done chan error
	lis  *listener.Listener
}

func watchSeqs(t *testing.T) *seqWatcher {
	t.Helper()
	l, err := listener.New(listener.Config{Groups: []int{listener.ProcGroup}, ReceiveBufferBytes: 32 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &seqWatcher{seqs: map[uint32]map[uint32]bool{}, exec: map[uint32][2]uint32{}, stop: cancel, done: make(chan error, 1), lis: l}
	go func() {
		w.done <- l.Run(ctx, func(dgs []cnmsg.Datagram, _ time.Time) {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, d := range dgs {
				m, err := cnmsg.Decode(d.Data)
				if err != nil || d.Sender != 0 || !m.ID.IsProc() {
					continue
				}
				ev, err := cnmsg.DecodeProc(m.Data)
				if err != nil {
					continue
				}
				if w.seqs[ev.CPU] == nil {
					w.seqs[ev.CPU] = map[uint32]bool{}
				}
				w.seqs[ev.CPU][m.Seq] = true
				if ev.What == cnmsg.ProcExec {
					w.exec[ev.PID] = [2]uint32{ev.CPU, m.Seq}
				}
			}
		})
	}()
	if err := l.Subscribe(ctx); err != nil {
		cancel()
		<-w.done
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	return w
}

func (w *seqWatcher) close() {
	if w.stop == nil {
		return
	}
	w.stop()
	<-w.done
	w.lis.Close()
	w.stop = nil
}

// TestRestartTraceAfterKill: the daemon is killed with SIGKILL (no
// IGNORE: the kernel goes on numbering process events), 20 processes run,
// and it is started again in the same boot. Its sinks get one
// not_listening gap record (from its last state save to its start, at
// least 20 pids allocated), and per CPU a loss marker whose range is
// exactly the messages the kernel numbered in between: every seq in it is
// a real message (the test's own listener saw it), the range starts right
// after the last seq the first daemon wrote and ends right before the
// first the second one wrote, and the execs of the 20 processes are in it.
func TestRestartTraceAfterKill(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	w := watchSeqs(t)
	bin := daemonBinary(t)
	dir := t.TempDir()
	conf := func(file string) string {
		return strings.Replace(fileConfig("[1]", `  - match: "1.1"
    sinks: [out]`, ""), "out/events.jsonl", file, 1)
	}
	p1 := startBinary(t, bin, dir, conf("run1.jsonl"))
	// Processes while the first daemon listens, so that the CPUs have a
	// seq in the first run.
	cntest.WaitFor(t, 10*time.Second, "the first daemon to write events from every CPU", func() bool {
		exec.Command("/bin/true").Run()
		cpus := map[float64]bool{}
		for _, l := range readLines(t, filepath.Join(dir, "run1.jsonl")) {
			if l.Proc != nil {
				cpus[l.Proc["cpu"].(float64)] = true
			}
		}
		return len(cpus) >= min(runtime.NumCPU(), 2)
	})
	if err := p1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p1.cmd.Wait()
	var pids []uint32
	for range 20 {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, uint32(c.Process.Pid))
	}
	cntest.WaitFor(t, 10*time.Second, "the test's listener to see the children's execs", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, pid := range pids {
			if _, ok := w.exec[pid]; !ok {
				return false
			}
		}
		return true
	})
	p2 := startBinary(t, bin, dir, conf("run2.jsonl"))
	// Every CPU that numbered an exec meanwhile must be seen again: run
	// processes until the second daemon has written a message from each.
	run1 := readLines(t, filepath.Join(dir, "run1.jsonl"))
	inRun1 := map[uint32]bool{}
	for _, l := range run1 {
		if l.Type == "" && l.Proc != nil {
			inRun1[uint32(l.Proc["cpu"].(float64))] = true
		}
	}
	var run2 []line
	w.mu.Lock()
	need := map[uint32]bool{} // CPUs with a seq in both runs and children's execs between
	for _, pid := range pids {
		if e, ok := w.exec[pid]; ok {
			if inRun1[e[0]] {
				need[e[0]] = true
			}
		} else {
			w.mu.Unlock()
			t.Fatalf("the test's listener did not see the exec of pid %d", pid)
		}
	}
	w.mu.Unlock()
	cntest.WaitFor(t, 20*time.Second, "the second daemon to see every CPU the children ran on", func() bool {
		exec.Command("/bin/true").Run()
		run2 = readLines(t, filepath.Join(dir, "run2.jsonl"))
		seen := map[uint32]bool{}
		for _, l := range run2 {
			if l.Type == "" && l.Proc != nil {
				seen[uint32(l.Proc["cpu"].(float64))] = true
			}
		}
		for c := range need {
			if !seen[c] {
				return false
			}
		}
		return true
	})
	// The restart gap is counted lost when="not_listening": the first
	// loss marker of each CPU's stream, not loss while listening.
	lostSel := func(when string) map[string]string { return map[string]string{"idx": "1", "val": "1", "when": when} }
	cntest.WaitFor(t, 20*time.Second, "cnbridged_messages_lost_total{when=\"not_listening\"} to be the first loss markers' sum", func() bool {
		nl := p2.metric("cnbridged_messages_lost_total", lostSel("not_listening"))
		first := map[uint32]uint32{}
		for _, l := range readLines(t, filepath.Join(dir, "run2.jsonl")) {
			if l.Type == "loss" && l.Idx == 1 && l.Val == 1 {
				if _, ok := first[*l.CPU]; !ok {
					first[*l.CPU] = l.Lost
				}
			}
		}
		var sum uint32
		for _, n := range first {
			sum += n
		}
		return nl > 0 && nl == float64(sum)
	})
	if l, drops := p2.metric("cnbridged_messages_lost_total", lostSel("listening")), p2.metric("cnbridged_socket_drops_total", nil); l != 0 && drops == 0 {
		t.Errorf("lost while listening %v with no socket drops: the restart gap was counted as live loss", l)
	}
	p2.stop()
	w.close()
	run2 = readLines(t, filepath.Join(dir, "run2.jsonl"))

	// The gap record comes first.
	if len(run2) == 0 || run2[0].Type != "gap" {
		t.Fatalf("run 2's first line got %+v, want the gap record", run2[:min(1, len(run2))])
	}
	var gap map[string]any
	if err := json.Unmarshal([]byte(run2[0].raw), &gap); err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.RFC3339Nano, gap["from"].(string))
	to, _ := time.Parse(time.RFC3339Nano, gap["to"].(string))
	if gap["reason"] != "not_listening" || !from.Before(to) || gap["clean_stop"] != false {
		t.Errorf("gap record got %s, want reason not_listening, from before to, clean_stop false", run2[0].raw)
	}
	if n := gap["pids_allocated"].(float64); n < float64(len(pids)) || n > 1e6 {
		t.Errorf("pids_allocated got %v, want at least the %d processes run meanwhile", n, len(pids))
	}
	t.Logf("gap: %s", run2[0].raw)

	// The first daemon's last seq and the second one's first, per CPU.
	last1, first2 := map[uint32]uint32{}, map[uint32]uint32{}
	for _, l := range run1 {
		if l.Type == "" && l.Proc != nil {
			last1[uint32(l.Proc["cpu"].(float64))] = l.Seq
		}
	}
	markers := map[uint32]line{}
	for _, l := range run2 {
		switch {
		case l.Type == "loss" && l.Idx == 1 && l.Val == 1:
			if _, dup := markers[*l.CPU]; !dup {
				markers[*l.CPU] = l
			}
		case l.Type == "" && l.Proc != nil:
			c := uint32(l.Proc["cpu"].(float64))
			if _, ok := first2[c]; !ok {
				first2[c] = l.Seq
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lost uint32
	for c := range need {
		m, ok := markers[c]
		if !ok {
			t.Errorf("cpu %d: no loss marker after the restart, though the kernel numbered execs there", c)
			continue
		}
		if m.FromSeq <= last1[c] && last1[c] != 0 {
			t.Errorf("cpu %d: marker %d..%d starts at or before the first daemon's last written seq %d", c, m.FromSeq, m.ToSeq, last1[c])
		}
		if m.ToSeq+1 != first2[c] {
			t.Errorf("cpu %d: marker %d..%d does not end right before the second daemon's first seq %d", c, m.FromSeq, m.ToSeq, first2[c])
		}
		if m.Lost != m.ToSeq-m.FromSeq+1 {
			t.Errorf("cpu %d: marker %s: lost is not the range's size", c, m.raw)
		}
		for s := m.FromSeq; s != m.ToSeq+1; s++ {
			if !w.seqs[c][s] {
				t.Errorf("cpu %d: seq %d counted lost but the kernel never numbered it (the test's listener did not see it)", c, s)
				break
			}
		}
		lost += m.Lost
	}
	if len(need) == 0 {
		t.Fatal("no CPU ran both first-run processes and the children")
	}
	for _, pid := range pids {
		e := w.exec[pid]
		if !need[e[0]] {
			continue
		}
		m := markers[e[0]]
		if e[1] < m.FromSeq || e[1] > m.ToSeq {
			t.Errorf("exec of pid %d (cpu %d seq %d) is not in the lost range %d..%d", pid, e[0], e[1], m.FromSeq, m.ToSeq)
		}
	}
	t.Logf("lost across the restart: %d messages on %d CPUs", lost, len(need))
}
