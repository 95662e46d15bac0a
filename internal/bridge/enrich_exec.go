package bridge

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// prefetch reads /proc for the batch's execs, then waits until the reader
// has handled every event the kernel sent before the last read (or 2 ms
// have passed): a later exec of the same pid that the reads may show is
// then counted in execSeen when the execs are applied.
//
// A batch with parallelMin execs or more per goroutine (a burst: the
// reader found them waiting together) is read by up to ExecReaders
// goroutines at once, each with its own procinfo.Reader; the table is
// only read here, on the enricher goroutine, before they start.
//
// Only execs of processes the table knows when the exec is applied are
// read ahead: those it holds, and those a fork earlier in the batch adds
// (a burst: forks and execs arrive together). exec reads a process it
// does not know in full (observe).
func (e *enricher) prefetch(b *event.Batch) {
	e.pre = e.pre[:0]
	clear(e.forked)
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind != event.KindMessage || !r.HasProc || r.Sender != 0 ||
			(r.Enrich != event.EnrichPending && r.Enrich != event.EnrichTable) {
			continue
		}
		ev := &r.Proc
		switch ev.What {
		case cnmsg.ProcFork:
			if ev.ChildPID == ev.ChildTGID {
				e.forked[ev.ChildTGID] = ev.ParentTGID
			}
		case cnmsg.ProcExec:
			p := e.table.Get(ev.TGID)
			if parent, ok := e.forked[ev.TGID]; ok && p == nil {
				p = e.table.Get(parent) // what the child inherits
				if p == nil {
					continue
				}
			}
			if p != nil {
				e.pre = append(e.pre, preRead{rec: i, pid: ev.PID, like: likeOf(p)})
			}
		}
	}
	reads := len(e.pre)
	if reads == 0 {
		return
	}
	if workers := min(1+len(e.extra), reads/parallelMin); workers > 1 {
		e.readParallel(workers)
	} else {
		for i := range e.pre {
			e.pre[i].readWith(&e.reader)
		}
	}
	if !e.live.Load() {
		return
	}
	read := monotonicNs()
	for deadline := read + 2e6; e.seenTs.Load() < uint64(read) && monotonicNs() < deadline; {
		time.Sleep(20 * time.Microsecond)
	}
}

// parallelMin is the fewest execs per goroutine for which prefetch reads
// on more than one: a few execs are read on the enricher's own, without
// waking another thread.
const parallelMin = 4

// readParallel makes the reads of e.pre on workers goroutines, this one
// included, each taking the next unread exec.
func (e *enricher) readParallel(workers int) {
	var next atomic.Int32
	work := func(rd *procinfo.Reader) {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(e.pre) {
				return
			}
			e.pre[k].readWith(rd)
		}
	}
	var wg sync.WaitGroup
	for _, rd := range e.extra[:workers-1] {
		wg.Go(func() { work(rd) })
	}
	work(&e.reader)
	wg.Wait()
	e.execBursts.Inc()
}

// likeOf returns what the table knows of p that an exec may keep (the
// zero Info for nil), for ReadExec to reuse its strings.
func likeOf(p *proctable.Process) procinfo.Info {
	if p == nil {
		return procinfo.Info{}
	}
	return procinfo.Info{Exe: p.Exe, Cwd: p.Cwd, Comm: p.Comm, Cgroup: p.Cgroup, ContainerID: p.ContainerID, PodUID: p.PodUID}
}

// preRead is a /proc read made by prefetch for the exec record at index
// rec: rec, pid and like are set before the read, the rest by it.
type preRead struct {
	rec  int
	pid  uint32
	like procinfo.Info
	in   procinfo.Info
	err  error
}

func (p *preRead) readWith(rd *procinfo.Reader) {
	p.in, p.err = rd.ReadExec(p.pid, &p.like)
}

func monotonicNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// exec applies an exec event: the new image is read from /proc.
func (e *enricher) exec(ev *cnmsg.ProcEvent, behind bool) *proctable.Process {
	slot := ev.PID % execSlots
	e.execDone[slot]++
	known := e.table.Get(ev.TGID) != nil
	if behind && known {
		e.count(e.backlog)
		return e.table.Exec(ev.PID, ev.TGID, &proctable.Observed{Gone: true}, false)
	}
	if !known {
		if o, ok := e.observe(ev.PID); ok {
			e.count(e.read)
			stale := e.execSeen[slot].Load() != e.execDone[slot]
			return e.table.Exec(ev.PID, ev.TGID, &o, stale)
		}
		return nil
	}
	var in procinfo.Info
	var err error
	for e.nextPre < len(e.pre) && e.pre[e.nextPre].rec < e.cur {
		e.nextPre++ // read ahead for an exec applied another way
	}
	if e.nextPre < len(e.pre) && e.pre[e.nextPre].rec == e.cur {
		p := &e.pre[e.nextPre]
		e.nextPre++
		in, err = p.in, p.err
	} else {
		like := likeOf(e.table.Get(ev.TGID))
		in, err = e.reader.ReadExec(ev.PID, &like)
	}
	if err != nil {
		e.readError(ev.PID, err)
		in = procinfo.Info{Gone: true}
	}
	// Read after /proc: any later exec received by now shows here.
	stale := e.execSeen[slot].Load() != e.execDone[slot]
	switch {
	case in.Exe == "" && len(in.Cmdline) == 0:
		// A zombie: it exited before its image could be read.
		in = procinfo.Info{Gone: true}
	case len(in.Cmdline) == 0:
		// An image without arguments yet: the read caught a later exec
		// of this pid in progress (the kernel sets the arguments up
		// after it switches the image), whose event is still to come.
		stale = true
	}
	// The table keeps the uids and gids (TestSetIDExec) and, for a gone
	// process, the cgroup: see proctable.Table.Exec.
	o := proctable.Observed{
		PID: ev.PID, Gone: in.Gone,
		Exe: in.Exe, Cmdline: e.redact(in.Cmdline), CmdlineTruncated: in.CmdlineTruncated, Cwd: in.Cwd, Comm: in.Comm,
		Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
		Missing: in.Unreadable,
	}
	if in.Gone {
		e.count(e.gone)
	} else {
		e.count(e.read)
	}
	return e.table.Exec(ev.PID, ev.TGID, &o, stale)
}
