package enrich

import (
	"context"
	"sort"

	"github.com/cnbridged/cnbridged/internal/proctable"
)

// TableView is a read-only copy of the process table, for the daemon's
// /debug/proctable endpoint: what it holds, to be compared with /proc.
type TableView struct {
	// Processes are the thread groups in the table, by pid.
	Processes []ProcessView `json:"processes"`
	// Threads are the threads the table tracks apart from them, by tid.
	Threads []ThreadView `json:"threads"`
	// MaxEntries is process_table.max_entries: Processes plus Threads
	// never exceed it.
	MaxEntries int `json:"max_entries"`
	// Evicted counts the processes the bound has evicted.
	Evicted uint64 `json:"evicted"`
}

// ThreadView is a thread of the table and its thread group.
type ThreadView struct {
	TID  uint32 `json:"tid"`
	TGID uint32 `json:"tgid"`
}

// ProcessView identifies one process of the table: a pid and its start
// (field 22 of /proc/<pid>/stat), which tell a reused pid apart.
type ProcessView struct {
	PID        uint32 `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
}

// TableView returns a copy of the process table, taken by the enricher
// between two batches. The table is fed only while a route enriches.
func (e *Enricher) TableView(ctx context.Context) (TableView, error) {
	c := make(chan TableView, 1)
	select {
	case e.views <- c:
	case <-e.done:
		return TableView{}, ErrStopped
	case <-ctx.Done():
		return TableView{}, ctx.Err()
	}
	select {
	case v := <-c:
		return v, nil
	case <-ctx.Done():
		return TableView{}, ctx.Err()
	}
}

// view copies the table. Called on the enricher goroutine.
func (e *Enricher) view() TableView {
	st := e.table.Stats()
	v := TableView{Threads: make([]ThreadView, 0, st.Threads), MaxEntries: e.table.MaxEntries(), Evicted: uint64(st.Evicted),
		Processes: make([]ProcessView, 0, st.Processes)}
	e.table.All(func(p *proctable.Process) bool {
		v.Processes = append(v.Processes, ProcessView{PID: p.TGID, StartTicks: p.StartTicks})
		return true
	})
	e.table.Threads(func(tid, tgid uint32) bool {
		v.Threads = append(v.Threads, ThreadView{TID: tid, TGID: tgid})
		return true
	})
	sort.Slice(v.Threads, func(i, j int) bool { return v.Threads[i].TID < v.Threads[j].TID })
	sort.Slice(v.Processes, func(i, j int) bool { return v.Processes[i].PID < v.Processes[j].PID })
	return v
}
