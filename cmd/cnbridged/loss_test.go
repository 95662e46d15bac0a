package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestInjectedGaps: 100 000 seqs with every 1000th skipped → exactly 99
// lost (the last skip has no later message to reveal it), exactly 99 loss
// markers, and nothing else counted.
func TestInjectedGaps(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	id := fmt.Sprintf("%d.%d", idxTest, groupGaps)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupGaps, "]"),
		`  - match: "`+id+`"
    sinks: [out]`,
		`  userspace_senders: ["`+id+`"]`))
	em := newEmitter(t)
	sent := 0
	for i := 0; i < 100000; i++ {
		if i%1000 == 999 {
			time.Sleep(time.Millisecond)
			continue
		}
		em.send(groupGaps, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupGaps}, Seq: uint32(i)}, []byte{byte(i)})
		sent++
	}
	sel := map[string]string{"idx": fmt.Sprint(idxTest), "val": fmt.Sprint(groupGaps)}
	cntest.WaitFor(t, 30*time.Second, "every message received", func() bool {
		return p.metric("cnbridged_messages_received_total", sel) >= float64(sent)
	})
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 30*time.Second, "every line written", func() bool {
		return p.metric("cnbridged_sink_messages_total", map[string]string{"sink": "out", "result": "sent"}) >= float64(sent+99)
	})
	checks := []struct {
		name string
		sel  map[string]string
		want float64
	}{
		{"cnbridged_messages_received_total", sel, float64(sent)},
		{"cnbridged_messages_lost_total", sel, 99},
		{"cnbridged_messages_duplicate_total", sel, 0},
		{"cnbridged_seq_resets_total", sel, 0},
		{"cnbridged_messages_rejected_total", nil, 0},
		{"cnbridged_socket_drops_total", nil, 0},
		{"cnbridged_socket_overruns_total", nil, 0},
		{"cnbridged_sink_messages_total", map[string]string{"result": "dropped"}, 0},
	}
	for _, c := range checks {
		if got := p.metric(c.name, c.sel); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.sel, got, c.want)
		}
	}
	p.stop()
	markers, msgs := 0, 0
	for _, l := range readLines(t, out) {
		if l.Type == "loss" {
			if l.Lost != 1 || l.FromSeq != l.ToSeq || l.FromSeq%1000 != 999 || l.Idx != idxTest || l.Val != groupGaps {
				t.Errorf("bad loss marker: %s", l.raw)
			}
			markers++
			continue
		}
		msgs++
	}
	if markers != 99 || msgs != sent {
		t.Errorf("file: got %d loss markers and %d messages, want 99 and %d", markers, msgs, sent)
	}
}

// TestForkStormNoFalseLoss: real fork/exec storms pinned to CPU 0 and CPU 1
// at once. The kernel numbers process events per CPU; a ledger keyed only
// by idx.val would report thousands of false gaps.
func TestForkStormNoFalseLoss(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("needs taskset (util-linux) to pin the storms to CPUs")
	}
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    sinks: [out]`, ""))
	const perCPU = 400
	var wg sync.WaitGroup
	for _, cpu := range []string{"0", "1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", perCPU)
			if out, err := exec.Command("taskset", "-c", cpu, "/bin/sh", "-c", script).CombinedOutput(); err != nil {
				t.Errorf("storm on cpu %s: %v\n%s", cpu, err, out)
			}
		}()
	}
	wg.Wait()
	sel := map[string]string{"idx": "1", "val": "1"}
	// Each /bin/true is at least a fork, an exec and an exit.
	cntest.WaitFor(t, 20*time.Second, "the storm's events", func() bool {
		return p.metric("cnbridged_messages_received_total", sel) >= 3*2*perCPU
	})
	if got := p.metric("cnbridged_messages_lost_total", sel); got != 0 {
		t.Errorf("lost_total{1.1} got %v, want 0", got)
	}
	if got := p.metric("cnbridged_socket_drops_total", nil); got != 0 {
		t.Errorf("socket_drops_total got %v, want 0", got)
	}
	p.stop()
	cpus := map[float64]int{}
	for _, l := range readLines(t, filepath.Join(p.dir, "out/events.jsonl")) {
		if l.Type == "loss" {
			t.Errorf("loss marker during the storm: %s", l.raw)
		}
		if l.Proc != nil {
			if c, ok := l.Proc["cpu"].(float64); ok {
				cpus[c]++
			}
		}
	}
	if len(cpus) < 2 {
		t.Errorf("events from %d CPUs, want both: %v", len(cpus), cpus)
	}
}

// TestForcedOverrun: a 64 KiB receive buffer and the daemon stopped
// (SIGSTOP) during a burst → the kernel drops messages; the overrun counter,
// the kernel's exact drop count and the ledger's gap count must agree, and
// the daemon must catch up.
func TestForcedOverrun(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	id := fmt.Sprintf("%d.%d", idxTest, groupOverrun)
	cfg := fmt.Sprintf(`
listener:
  groups: [%d]
  receive_buffer_bytes: 65536
  userspace_senders: ["%s"]
sinks:
  out:
    type: file
    path: %%DIR%%/out/events.jsonl
routes:
  - match: "%s"
    sinks: [out]
`, groupOverrun, id, id)
	p := startDaemon(t, cfg)
	em := newEmitter(t)
	hdr := func(seq int) cnmsg.Header {
		return cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupOverrun}, Seq: uint32(seq)}
	}
	seq := 0
	for ; seq < 100; seq++ {
		em.send(groupOverrun, hdr(seq), []byte("before"))
	}
	sel := map[string]string{"idx": fmt.Sprint(idxTest), "val": fmt.Sprint(groupOverrun)}
	cntest.WaitFor(t, 10*time.Second, "the first 100", func() bool { return p.metric("cnbridged_messages_received_total", sel) >= 100 })

	p.pause()
	for ; seq < 5100; seq++ {
		em.send(groupOverrun, hdr(seq), []byte("burst while stopped"))
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	// Every message of the burst is either dropped by the kernel (counted
	// at once) or read by the daemon once it runs again: when the two add
	// up, its socket is empty and takes what follows.
	cntest.WaitFor(t, 10*time.Second, "the daemon to read what its socket held", func() bool {
		return p.metric("cnbridged_messages_received_total", sel)+p.metric("cnbridged_socket_drops_total", nil) >= float64(seq)
	})
	// Messages after the burst reveal the gap to the ledger.
	for end := seq + 10; seq < end; seq++ {
		em.send(groupOverrun, hdr(seq), []byte("after"))
	}
	sent := float64(seq)
	cntest.WaitFor(t, 10*time.Second, "the last message", func() bool {
		for _, l := range readLines(t, filepath.Join(p.dir, "out/events.jsonl")) {
			if l.Seq == uint32(seq-1) && l.Type == "" {
				return true
			}
		}
		return false
	})
	received := p.metric("cnbridged_messages_received_total", sel)
	drops := p.metric("cnbridged_socket_drops_total", nil)
	lost := p.metric("cnbridged_messages_lost_total", sel)
	overruns := p.metric("cnbridged_socket_overruns_total", nil)
	t.Logf("sent %v, received %v, kernel drops %v, ledger lost %v, overruns %v", sent, received, drops, lost, overruns)
	if overruns < 1 {
		t.Errorf("overruns got %v, want > 0", overruns)
	}
	if drops != sent-received {
		t.Errorf("socket_drops_total got %v, want sent-received = %v", drops, sent-received)
	}
	if lost != drops {
		t.Errorf("lost_total got %v, want socket_drops_total = %v", lost, drops)
	}
	p.stop()
}
