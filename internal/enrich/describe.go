package enrich

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// observe reads everything /proc says about pid for the table.
func (e *Enricher) observe(pid uint32) (proctable.Observed, bool) {
	readNs := uint64(monotonicNs())
	in, err := e.reader.Read(pid)
	if err != nil {
		e.readError(pid, err)
		return proctable.Observed{}, false
	}
	if in.Gone {
		return proctable.Observed{PID: pid, Gone: true}, false
	}
	o := proctable.Observed{
		PID: pid, PPID: in.PPID, StartTicks: in.StartTicks,
		Exe: in.Exe, Cmdline: e.redact(in.Cmdline), CmdlineTruncated: in.CmdlineTruncated, Cwd: in.Cwd,
		UID: in.UID, EUID: in.EUID, GID: in.GID, EGID: in.EGID, User: e.users.Name(in.UID, time.Now()),
		Comm: in.Comm, Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
		Missing: in.Unreadable, ReadNs: readNs,
	}
	return o, true
}

// observeGroup is observe with the ids of the group's other threads (its
// task directory), for a process the table seeds: a group whose leader
// exits first keeps its entry while the table tracks a thread of it.
func (e *Enricher) observeGroup(pid uint32) (proctable.Observed, bool) {
	o, ok := e.observe(pid)
	if !ok {
		return o, false
	}
	if tids, gone, err := procinfo.Tasks(e.o.ProcRoot, pid); err == nil && !gone {
		for tid := range tids {
			if tid != pid {
				o.Threads = append(o.Threads, tid)
			}
		}
	}
	return o, true
}

// describeOnly describes an event from a userspace sender (listener.
// userspace_senders) without letting it change the table: from the table
// when it knows the process, else from /proc.
func (e *Enricher) describeOnly(r *event.Record) {
	ev := &r.Proc
	pid, tgid := ev.PID, ev.TGID
	if ev.What == cnmsg.ProcFork {
		pid, tgid = ev.ChildPID, ev.ChildTGID
	}
	en := &event.Enrichment{PID: pid}
	if p := e.table.Lookup(pid); p != nil && p.TGID == tgid {
		en.Process = p
		e.count(e.fromTable)
	} else if o, ok := e.observe(tgid); ok {
		e.count(e.read)
		en.Process = &proctable.Process{PID: tgid, TGID: tgid, PPID: o.PPID, StartTicks: o.StartTicks,
			Exe: o.Exe, Cmdline: o.Cmdline, CmdlineTruncated: o.CmdlineTruncated, Cwd: o.Cwd,
			UID: o.UID, EUID: o.EUID, GID: o.GID, EGID: o.EGID, User: o.User, Comm: o.Comm,
			Cgroup: o.Cgroup, ContainerID: o.ContainerID, PodUID: o.PodUID,
			EntityID: e.table.EntityID(tgid, o.StartTicks), StartTime: e.table.StartTime(o.StartTicks)}
	} else {
		en.Gone = true
		e.count(e.gone)
	}
	if en.Process != nil {
		en.Parent = e.table.Parent(en.Process)
	}
	r.Enriched, r.Enrich = en, event.EnrichDone
}

// count adds one to an enrich_total result.
func (e *Enricher) count(c prometheus.Counter) {
	c.Inc()
	e.counted++
}

// apply feeds r to the table and, for a pending record, describes it.
func (e *Enricher) apply(r *event.Record, behind bool) {
	counted := e.counted
	if r.Sender != 0 {
		if r.Enrich == event.EnrichPending {
			e.describeOnly(r)
		}
		return
	}
	p, leaderExit := e.update(&r.Proc, behind)
	if r.Enrich == event.EnrichPending {
		e.describe(r, p, leaderExit, counted)
	}
}

// update applies a kernel event to the table and returns the snapshot the
// event describes (nil: unknown to the table and gone from /proc).
// leaderExit reports the exit of a whole process, not of a thread.
func (e *Enricher) update(ev *cnmsg.ProcEvent, behind bool) (p *proctable.Process, leaderExit bool) {
	switch ev.What {
	case cnmsg.ProcFork:
		return e.fork(ev), false
	case cnmsg.ProcExec:
		return e.exec(ev, behind), false
	case cnmsg.ProcExit:
		if ev.HasParent {
			// The task's parent now: the reaper, for an orphan.
			e.table.Reparent(ev.TGID, ev.ParentTGID)
		}
		p, thread := e.table.Exit(ev.PID, ev.TGID, ev.TimestampNs)
		return p, p != nil && !thread
	case cnmsg.ProcUID:
		p = e.table.SetUID(ev.PID, ev.TGID, ev.RUID, ev.EUID, e.users.Name(ev.RUID, time.Now()))
	case cnmsg.ProcGID:
		p = e.table.SetGID(ev.PID, ev.TGID, ev.RGID, ev.EGID)
	case cnmsg.ProcComm:
		p = e.table.SetComm(ev.PID, ev.TGID, string(ev.CommBytes()))
	case cnmsg.ProcCoredump:
		if ev.HasParent {
			e.table.Reparent(ev.TGID, ev.ParentTGID)
		}
		p = e.table.Update(ev.PID, ev.TGID, nil)
	default: // sid, ptrace
		p = e.table.Update(ev.PID, ev.TGID, nil)
	}
	if p == nil {
		p = e.unknown(ev.TGID)
	}
	return p, false
}

// fork applies a fork event and returns the new process, or the group of a
// new thread.
func (e *Enricher) fork(ev *cnmsg.ProcEvent) *proctable.Process {
	p, res := e.table.Fork(ev.ParentTGID, ev.ChildPID, ev.ChildTGID, ev.TimestampNs)
	if res.Replaced != nil {
		// Its pid is free again: the exit of the process it held was lost.
		e.emitLost([]*proctable.Process{res.Replaced})
	}
	switch {
	case res.Thread:
		if p == nil {
			p = e.unknown(ev.ChildTGID)
		} else {
			e.lateThread(ev.ChildPID, ev.ChildTGID, ev.TimestampNs)
		}
	case !res.ParentKnown:
		// The parent is not in the table (evicted, or lost): read the
		// child as a whole.
		if o, ok := e.observe(ev.ChildPID); ok {
			e.count(e.read)
			p = e.table.Seed(&o)
		}
	case res.Ambiguous:
		e.startReads.Inc()
		if ticks, gone, err := e.reader.ReadStartTicks(ev.ChildPID); err == nil && !gone {
			p = e.table.SetStart(ev.ChildTGID, ticks)
		}
	}
	if !res.Thread && res.ParentKnown {
		e.lateFork(p, ev.TimestampNs)
	}
	return p
}

// describe sets r's enrichment from p, the snapshot update returned.
// counted is e.counted before the update: when the update counted no
// result, the event was described from the table.
func (e *Enricher) describe(r *event.Record, p *proctable.Process, leaderExit bool, counted int) {
	ev := &r.Proc
	if p == nil {
		en := &event.Enrichment{Gone: true, PID: ev.PID}
		if ev.What == cnmsg.ProcFork {
			en.PID = ev.ChildPID
		}
		r.Enriched, r.Enrich = en, event.EnrichDone
		e.count(e.gone)
		return
	}
	if e.counted == counted {
		e.count(e.fromTable)
	}
	en := &event.Enrichment{Process: p}
	if leaderExit {
		en.DurationNs, en.HasDuration = p.DurationNs(ev.TimestampNs, e.off), true
	}
	if ev.What != cnmsg.ProcExit || p.PPID != 0 {
		en.Parent = e.table.Parent(p)
	}
	if n := int(r.Ancestors); n > 0 && en.Parent != nil {
		en.Ancestors = e.table.Ancestors(make([]*proctable.Process, 0, n), p, n)
	}
	r.Enriched, r.Enrich = en, event.EnrichDone
}

// unknown reads a process the table does not know and seeds it; nil when
// it has gone.
func (e *Enricher) unknown(tgid uint32) *proctable.Process {
	o, ok := e.observeGroup(tgid)
	if !ok {
		return nil
	}
	e.count(e.read)
	return e.table.Seed(&o)
}

func (e *Enricher) readError(pid uint32, err error) {
	e.count(e.errs)
	if e.errLog.Allow("read", time.Now()) {
		e.log.Warn("reading /proc failed (logged at most once a minute)", zap.Uint32("pid", pid), zap.Error(err))
	}
}
