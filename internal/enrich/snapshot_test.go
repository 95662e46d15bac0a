package enrich

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// TestSnapshot: a snapshot is taken on the enricher's goroutine while it
// runs, holds the table's processes with their parents, says when the
// table is incomplete (off, resync) and fails once the enricher stopped.
func TestSnapshot(t *testing.T) {
	e, o := selfSeeded(t)
	self := o.PID
	enrichNow(e, procBatch(event.NewPool(),
		cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: self, ParentTGID: self, ChildPID: 4_000_001, ChildTGID: 4_000_001,
			TimestampNs: uint64(monotonicNs())}))
	e.SetEnabled(true)
	ctx, cancel := context.WithCancel(context.Background())
	go e.Run(ctx)
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()

	s, err := e.Snapshot(tctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Incomplete != "" || len(s.Entries) != 2 {
		t.Fatalf("snapshot: incomplete %q, %d entries; want complete, 2", s.Incomplete, len(s.Entries))
	}
	for _, en := range s.Entries {
		if en.P.TGID == 4_000_001 && (en.Parent == nil || en.Parent.TGID != self) {
			t.Errorf("the child's parent is %v, want this process", en.Parent)
		}
	}

	e.Resync() // what the reader asks for on loss
	if s, err = e.Snapshot(tctx); err != nil || s.Incomplete != IncompleteResync {
		t.Errorf("after loss: incomplete %q (%v), want %q", s.Incomplete, err, IncompleteResync)
	}
	e.SetEnabled(false) // a reload's plan without enrichment
	if s, err = e.Snapshot(tctx); err != nil || s.Incomplete != IncompleteOff {
		t.Errorf("no route enriches: incomplete %q (%v), want %q", s.Incomplete, err, IncompleteOff)
	}
	cancel()
	<-e.done
	if _, err := e.Snapshot(tctx); err == nil {
		t.Error("Snapshot after the enricher stopped: no error")
	}
}

// selfSeeded returns an enricher whose table holds this process, seeded
// from /proc, and what /proc said of it.
func selfSeeded(t *testing.T) (*Enricher, proctable.Observed) {
	t.Helper()
	e := New(Options{MaxEntries: 64, NoSeed: true}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	o, ok := e.observe(uint32(os.Getpid()))
	if !ok {
		t.Fatal("cannot read this process")
	}
	e.table.Seed(&o)
	return e, o
}
