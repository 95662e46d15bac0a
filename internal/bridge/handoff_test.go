package bridge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// keeper is a Target that keeps the last batch offered to it.
type keeper struct{ b *event.Batch }

func (k *keeper) Offer(b *event.Batch) {
	b.Retain(1)
	k.b = b
}

// TestHandleCapturesBeforeHandOff: Handle, on the reader's goroutine,
// reads /proc for each exec as it handles it (through the enricher's
// capturer), in the batch's order, and hands the batch to the enricher's
// queue and to the sink with the reads in its records: two live
// processes, each with its own arguments, in one batch.
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
	reg := prometheus.NewRegistry()
	enr := enrich.New(enrich.Options{NoSeed: true, CaptureBudget: time.Second}, reg, zaptest.NewLogger(t))
	pat, _ := router.ParsePattern("1.1")
	sink := &keeper{}
	b := bridge.New(&bridge.Plan{Table: router.New([]router.Route{{Match: pat, Sinks: 1, Enrich: true}}), Sinks: []bridge.Target{sink}, Enrich: true},
		seqtrack.Options{}, enr, reg, zaptest.NewLogger(t))
	defer b.Close()
	var dgs []cnmsg.Datagram
	for i, pid := range pids {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		dgs = append(dgs, cnmsg.Datagram{Data: cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: uint32(i)},
			cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid, TimestampNs: uint64(ts.Nano())}))})
	}
	b.Handle(dgs, time.Now())
	// The enricher is not running: the batch waits in its queue as the
	// reader handed it on (the enricher drops a record's capture once it
	// has used it).
	if n := gauge(t, reg, "cnbridged_enrich_queue_length"); n != 1 {
		t.Fatalf("%v batches in the enricher's queue, want 1", n)
	}
	batch := sink.b
	if batch == nil {
		t.Fatal("no batch offered to the sink")
	}
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
	if n := gathered(t, reg, "cnbridged_enrich_capture_total", "result", "received"); n != 2 {
		t.Errorf("captures received = %v, want 2", n)
	}
	// A stopped enricher lets go of what it holds.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	enr.Run(ctx)
	batch.WaitEnriched()
	batch.Release()
}

// gauge returns the value of the gauge name (without labels).
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
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
