package enrich

import (
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// TakeLost returns the exit_lost processes waiting to be emitted (the
// reader stores them as event.KindExitLost records). Called on the reader
// goroutine; costs one atomic load when there are none.
func (e *Enricher) TakeLost() []*proctable.Process {
	if e.nLost.Load() == 0 {
		return nil
	}
	e.lostMu.Lock()
	l := e.lost
	e.lost = nil
	e.nLost.Store(0)
	e.lostMu.Unlock()
	return l
}

// seed fills the table from a /proc scan.
func (e *Enricher) seed() {
	if e.o.NoSeed {
		return
	}
	pids, err := procinfo.Scan(e.o.ProcRoot)
	if err != nil {
		e.log.Warn("scanning /proc to seed the process table", zap.Error(err))
		return
	}
	for _, pid := range pids {
		if o, ok := e.observeGroup(pid); ok {
			e.table.Seed(&o)
			e.seeded.Inc()
		}
	}
	e.publish()
	e.log.Info("process table seeded from /proc", zap.Int("processes", e.table.Len()))
}

// resyncNow reconciles the table with /proc after loss.
func (e *Enricher) resyncNow() {
	e.resyncs.Inc()
	scanAt := monotonicNs()
	pids, err := procinfo.Scan(e.o.ProcRoot)
	if err != nil {
		e.log.Warn("scanning /proc to resync the process table", zap.Error(err))
		return
	}
	e.scanAt = scanAt
	e.scanLive = make(map[uint32]struct{}, len(pids))
	for _, pid := range pids {
		e.scanLive[pid] = struct{}{}
	}
	live := make([]proctable.Observed, 0, len(pids))
	for _, pid := range pids {
		// Known processes need only their start tick to be matched (read
		// after the scan began: see proctable.Observed.ReadNs).
		if p := e.table.Get(pid); p != nil {
			ticks, gone, err := e.reader.ReadStartTicks(pid)
			if err == nil && !gone {
				live = append(live, proctable.Observed{PID: pid, StartTicks: ticks, ReadNs: uint64(scanAt), StartOnly: true})
			}
			continue
		}
		if o, ok := e.observeGroup(pid); ok {
			live = append(live, o)
		}
	}
	lost, absent, added := e.table.Resync(live)
	e.seeded.Add(float64(len(added)))
	e.emitLost(lost)
	// The processes now on the pids of lost ones were read for their
	// start only: read them in full.
	for _, p := range lost {
		if o, ok := e.observeGroup(p.TGID); ok {
			e.table.Seed(&o)
		}
	}
	// Threads whose exits were lost: a group's threads that its task
	// directory no longer lists. (A group gone as a whole drops its
	// threads with it.)
	threadsGone := 0
	for _, tgid := range e.table.ThreadGroups() {
		tids, gone, err := procinfo.Tasks(e.o.ProcRoot, tgid)
		if err != nil || gone {
			continue
		}
		threadsGone += e.table.PruneThreads(tgid, func(tid uint32) bool { return tids[tid] })
	}
	// Processes gone from /proc may still have their exit event on its way
	// (received after the scan began): they are exit_lost only if it does
	// not come (see confirmLost).
	e.absent = append(e.absent, absent...)
	e.absentAt, e.absentSince = monotonicNs(), time.Now()
	e.log.Info("process table resynchronized with /proc after loss",
		zap.Int("pid_reused", len(lost)), zap.Int("gone_unconfirmed", len(absent)), zap.Int("seeded", len(added)),
		zap.Int("threads_gone", threadsGone))
}

// confirmLost reports as exit_lost the processes a resync found gone from
// /proc, and those a fork stamped before its scan added afterwards
// (lateFork), whose exit event has not come once the enricher has applied
// events stamped 50 ms after the scan, or, on a quiet system, a second
// after it with nothing left in its queue. The enricher's own progress
// counts, not the reader's: an exit the reader has handled may still wait
// in the enricher's queue.
func (e *Enricher) confirmLost() {
	if len(e.absent) == 0 && e.scanLive == nil {
		return
	}
	if e.appliedTs < uint64(e.absentAt+50e6) && (time.Since(e.absentSince) < time.Second || len(e.q) > 0) {
		return
	}
	var lost []*proctable.Process
	for _, p := range e.absent {
		if cur := e.table.Confirm(p); cur != nil {
			lost = append(lost, cur)
		}
	}
	e.absent = e.absent[:0]
	e.scanLive = nil
	e.emitLost(lost)
}

// lateFork checks p, a process a fork event just added to the table. A
// fork stamped before the last resync's scan whose child the scan did not
// list is of a process that had ended by then (the enricher was behind
// on it): its exit is lost unless it is still to come, so it waits with
// the resync's absent processes for confirmLost.
func (e *Enricher) lateFork(p *proctable.Process, tsNs uint64) {
	if e.scanLive == nil || p == nil || int64(tsNs) >= e.scanAt {
		return
	}
	if _, listed := e.scanLive[p.TGID]; !listed {
		e.absent = append(e.absent, p)
	}
}

// lateThread checks thread tid of group tgid, which a fork event just
// added to the table: stamped before the last resync's scan, it may be of
// a thread that had ended by then (its exit lost), which the scan could
// not prune; if /proc no longer lists it, it leaves the table again.
func (e *Enricher) lateThread(tid, tgid uint32, tsNs uint64) {
	if e.scanLive == nil || int64(tsNs) >= e.scanAt {
		return
	}
	if !procinfo.TaskExists(e.o.ProcRoot, tgid, tid) {
		e.table.DropThread(tid)
	}
}

// emitLost hands exit_lost processes to the reader.
func (e *Enricher) emitLost(lost []*proctable.Process) {
	if len(lost) == 0 {
		return
	}
	e.exitLost.Add(float64(len(lost)))
	e.lostMu.Lock()
	e.lost = append(e.lost, lost...)
	e.nLost.Store(int32(len(e.lost)))
	e.lostMu.Unlock()
	e.WakeReader()
}
