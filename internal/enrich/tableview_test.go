package enrich

import (
	"context"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// TestTableView: the view lists the table's processes with their starts
// and its threads, is taken on the enricher's goroutine while it runs, and
// fails once it has stopped.
func TestTableView(t *testing.T) {
	e, o := selfSeeded(t)
	self := o.PID
	enrichNow(e, procBatch(event.NewPool(),
		cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: self, ParentTGID: self, ChildPID: 4_000_001, ChildTGID: self}))
	ctx, cancel := context.WithCancel(context.Background())
	go e.Run(ctx)
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()
	v, err := e.TableView(tctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Processes) != 1 || v.Processes[0] != (ProcessView{PID: self, StartTicks: o.StartTicks}) {
		t.Errorf("processes %+v, want this process started at %d", v.Processes, o.StartTicks)
	}
	if len(v.Threads) != 1 || v.Threads[0] != (ThreadView{TID: 4_000_001, TGID: self}) {
		t.Errorf("threads %+v, want 4000001 of %d", v.Threads, self)
	}
	if v.MaxEntries != 64 {
		t.Errorf("max_entries %d, want 64", v.MaxEntries)
	}
	cancel()
	<-e.done
	if _, err := e.TableView(tctx); err == nil {
		t.Error("TableView after the enricher stopped: no error")
	}
}
