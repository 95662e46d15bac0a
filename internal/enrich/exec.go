package enrich

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

// An exec is described from what the reader captured as it received the
// event (Capturer), and from a late read here of what the capture left
// (its budget ran out): those fields are marked late.
//
// readLate makes the batch's late reads before its events are applied. A
// batch with parallelMin late reads or more per goroutine (a burst: the
// capture budget ran out on it) is read by up to ExecReaders goroutines
// at once, each with its own procinfo.Reader; the table is only read
// here, on the enricher goroutine, before they start.
//
// Only execs of processes the table knows when the exec is applied are
// read ahead: those it holds, and those a fork earlier in the batch adds
// (a burst: forks and execs arrive together). exec reads a process it
// does not know in full (observe).
//
// When the enricher is behind, it reads nothing: exec marks what the
// capture left missing.
//
// It returns the latest time (CLOCK_MONOTONIC ns) at which /proc was read
// for an exec of the batch, by the capture or here: see waitReader.
func (e *Enricher) readLate(b *event.Batch, behind bool) (lastRead int64) {
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
			if c := r.Capture; c != nil {
				lastRead = max(lastRead, c.At)
				if c.Observed.Gone || len(c.Observed.Late) == 0 {
					continue // nothing left to read
				}
			}
			if behind {
				continue
			}
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
		return lastRead
	}
	if workers := min(1+len(e.extra), reads/parallelMin); workers > 1 {
		e.readParallel(workers)
	} else {
		for i := range e.pre {
			e.pre[i].readWith(&e.reader)
		}
	}
	return max(lastRead, monotonicNs())
}

// waitReader waits until the reader has handled every event the kernel
// sent before lastRead (CLOCK_MONOTONIC ns), or 2 ms after it: a later
// exec of the same pid, which a read at lastRead may already show, is
// then counted in execSeen when the execs are applied (see exec's stale).
// The reader is past lastRead once it has handled an event stamped after
// it, or found the socket empty after it (SetEmptyAt); on a quiet host
// the latter holds as soon as it has handed the batch on.
func (e *Enricher) waitReader(lastRead int64) {
	if lastRead == 0 || !e.live.Load() {
		return
	}
	for deadline := lastRead + 2e6; !e.readerPast(lastRead) && monotonicNs() < deadline; {
		time.Sleep(20 * time.Microsecond)
	}
}

// readerPast reports whether the reader has handled everything the kernel
// sent before t (CLOCK_MONOTONIC ns).
func (e *Enricher) readerPast(t int64) bool {
	if e.seenTs.Load() >= uint64(t) {
		return true
	}
	if f := e.emptyAt.Load(); f != nil {
		if at := (*f)(); !at.IsZero() && e.clock.ns(at) >= t {
			return true
		}
	}
	return false
}

// parallelMin is the fewest late reads per goroutine for which readLate
// reads on more than one: a few are read on the enricher's own, without
// waking another thread.
const parallelMin = 4

// readParallel makes the reads of e.pre on workers goroutines, this one
// included, each taking the next unread exec.
func (e *Enricher) readParallel(workers int) {
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

// preRead is a late /proc read made by readLate for the exec record at
// index rec: rec, pid and like are set before the read, the rest by it.
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

// exec applies an exec event from what the reader captured (the record's
// Capture, nil when it read nothing) and a late read of the fields it
// left (Late): those are marked late, and missing too when the late read
// finds the process gone or is not made (the enricher is behind).
func (e *Enricher) exec(ev *cnmsg.ProcEvent, behind bool) *proctable.Process {
	c := e.capture
	slot := ev.PID % execSlots
	e.execDone[slot]++
	if e.table.Get(ev.TGID) == nil {
		o, ok := e.observe(ev.PID)
		if !ok {
			return nil
		}
		e.count(e.read)
		if c != nil && !c.Observed.Gone {
			overCapture(&o, &c.Observed)
		}
		stale := e.execSeen[slot].Load() != e.execDone[slot]
		return e.table.Exec(ev.PID, ev.TGID, &o, stale)
	}
	late := procinfo.ExecFields
	var in procinfo.Info
	var missing procinfo.Fields
	if c != nil {
		late = fieldsOf(c.Observed.Late)
		in = infoOf(&c.Observed)
		missing = fieldsOf(c.Observed.Missing)
		if c.Observed.Gone {
			late, missing = 0, procinfo.ExecFields
		}
	}
	switch {
	case late == 0:
	case behind:
		missing |= late
	default:
		rd, err := e.lateRead(ev)
		if err != nil {
			e.readError(ev.PID, err)
			rd = procinfo.Info{Gone: true}
		}
		if rd.Gone {
			missing |= late
		} else {
			fill(&in, &rd, late)
			missing |= fieldsOf(rd.Unreadable) & late
		}
	}
	// After the reads (and waitReader): any later exec received by now
	// shows here. A full capture was read before the reader received
	// the later execs: only those stamped before it ended count.
	stale := e.execSeen[slot].Load() != e.execDone[slot]
	if late == 0 && c != nil && e.overtaken != nil {
		stale = e.overtaken(ev.PID) != c.Overtaken
	}
	var o proctable.Observed
	if in.Exe == "" && len(in.Cmdline) == 0 {
		// No image: a zombie (it exited before its image could be read),
		// or gone before a read got to it.
		o = proctable.Observed{PID: ev.PID, Gone: true}
	} else {
		if len(in.Cmdline) == 0 && in.Exe != "" {
			// An image without arguments yet: the read caught a later
			// exec of this pid in progress (the kernel sets the
			// arguments up after it switches the image), whose event is
			// still to come.
			stale = true
		}
		o = proctable.Observed{
			PID: ev.PID, Exe: in.Exe, Cmdline: e.redact(in.Cmdline), CmdlineTruncated: in.CmdlineTruncated,
			Cwd: in.Cwd, Comm: in.Comm, Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
			Missing: e.fieldNames[missing],
		}
		if missing&procinfo.FieldCgroup != 0 {
			// A cgroup that could not be read stays as the table had it
			// (inherited), marked missing, as for a process gone before
			// any read. comm is left empty: exec renames the process, so
			// the name it inherited is not its own.
			p := e.table.Get(ev.TGID)
			o.Cgroup, o.ContainerID, o.PodUID = p.Cgroup, p.ContainerID, p.PodUID
		}
	}
	o.Late = e.fieldNames[late]
	switch {
	case behind && late != 0:
		e.count(e.backlog)
	case o.Gone:
		e.count(e.gone)
	default:
		e.count(e.read)
	}
	return e.table.Exec(ev.PID, ev.TGID, &o, stale)
}

// lateRead returns the late read readLate made for the record being
// applied, or reads now.
func (e *Enricher) lateRead(ev *cnmsg.ProcEvent) (procinfo.Info, error) {
	for e.nextPre < len(e.pre) && e.pre[e.nextPre].rec < e.cur {
		e.nextPre++ // read ahead for an exec applied another way
	}
	if e.nextPre < len(e.pre) && e.pre[e.nextPre].rec == e.cur {
		p := &e.pre[e.nextPre]
		e.nextPre++
		return p.in, p.err
	}
	like := likeOf(e.table.Get(ev.TGID))
	return e.reader.ReadExec(ev.PID, &like)
}

// fieldsOf returns the exec fields among names.
func fieldsOf(names []string) procinfo.Fields {
	var f procinfo.Fields
	for _, n := range names {
		switch n {
		case proctable.FieldCmdline:
			f |= procinfo.FieldCmdline
		case proctable.FieldExe:
			f |= procinfo.FieldExe
		case proctable.FieldCwd:
			f |= procinfo.FieldCwd
		case proctable.FieldCgroup:
			f |= procinfo.FieldCgroup
		case proctable.FieldComm:
			f |= procinfo.FieldComm
		}
	}
	return f
}

// infoOf returns the image fields of o.
func infoOf(o *proctable.Observed) procinfo.Info {
	return procinfo.Info{Exe: o.Exe, Cmdline: o.Cmdline, CmdlineTruncated: o.CmdlineTruncated, Cwd: o.Cwd, Comm: o.Comm,
		Cgroup: o.Cgroup, ContainerID: o.ContainerID, PodUID: o.PodUID}
}

// fill copies the fields f of rd into in.
func fill(in, rd *procinfo.Info, f procinfo.Fields) {
	if f&procinfo.FieldCmdline != 0 {
		in.Cmdline, in.CmdlineTruncated = rd.Cmdline, rd.CmdlineTruncated
	}
	if f&procinfo.FieldExe != 0 {
		in.Exe = rd.Exe
	}
	if f&procinfo.FieldCwd != 0 {
		in.Cwd = rd.Cwd
	}
	if f&procinfo.FieldCgroup != 0 {
		in.Cgroup, in.ContainerID, in.PodUID = rd.Cgroup, rd.ContainerID, rd.PodUID
	}
	if f&procinfo.FieldComm != 0 {
		in.Comm = rd.Comm
	}
}

// overCapture puts into o, a full read of a process the table did not
// know, the image fields the capture read (nearer the exec), and marks
// the others late.
func overCapture(o *proctable.Observed, c *proctable.Observed) {
	got := procinfo.ExecFields &^ fieldsOf(c.Late) &^ fieldsOf(c.Missing)
	in := procinfo.Info{Exe: o.Exe, Cmdline: o.Cmdline, CmdlineTruncated: o.CmdlineTruncated, Cwd: o.Cwd, Comm: o.Comm,
		Cgroup: o.Cgroup, ContainerID: o.ContainerID, PodUID: o.PodUID}
	read := infoOf(c)
	fill(&in, &read, got)
	o.Exe, o.Cmdline, o.CmdlineTruncated, o.Cwd, o.Comm = in.Exe, in.Cmdline, in.CmdlineTruncated, in.Cwd, in.Comm
	o.Cgroup, o.ContainerID, o.PodUID = in.Cgroup, in.ContainerID, in.PodUID
	o.Late = c.Late
}
