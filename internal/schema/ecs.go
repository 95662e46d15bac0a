package schema

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// ECS field values.
const (
	ecsKindEvent         = "event"
	ecsKindPipelineError = "pipeline_error" // data may be missing: loss, gap
	ecsKindMetric        = "metric"
	ecsModule            = "cnbridged"
)

// ecsEventType is the event.type of a process event: start for exec,
// end for exit, change for what changes a process's credentials, session
// or name, info otherwise (fork, ptrace, coredump, acknowledgements).
func ecsEventType(event string) string {
	switch event {
	case "exec":
		return `["start"]`
	case "exit":
		return `["end"]`
	case "uid", "gid", "sid", "comm":
		return `["change"]`
	}
	return `["info"]`
}

// AppendECS appends r as one ECS 9.4.0 document (a JSON object, no
// newline). Members of r that ECS has no field for go under the custom
// field set "cnbridged" (ECS's advice for custom fields: nest them under
// a proper name).
func AppendECS(dst []byte, r *fields.Record) []byte {
	w := w{b: append(dst, '{')}
	w.str("@timestamp", r.Time)
	m := w.open("ecs")
	w.str("version", ECSVersion)
	w.close(m)

	k := kindOf(r)
	ecsEvent(&w, r, k)
	m = w.open("host")
	w.str("name", r.Host)
	w.close(m)
	switch k {
	case kindProc, kindExitLost, kindLife:
		ecsProcess(&w, r)
	}
	ecsMessage(&w, r, k)
	ecsCustom(&w, r, k)
	return append(w.b, '}')
}

func ecsEvent(w *w, r *fields.Record, k kind) {
	m := w.open("event")
	switch k {
	case kindLoss, kindGap, kindTapDropped:
		w.str("kind", ecsKindPipelineError)
	case kindSuppressed:
		w.str("kind", ecsKindMetric) // a count of records over a time
	default:
		w.str("kind", ecsKindEvent)
	}
	if k != kindMsg {
		w.raw("category", `["process"]`)
	}
	switch k {
	case kindProc, kindProcNoPID:
		w.raw("type", ecsEventType(r.Proc.V.Event))
		w.str("action", r.Proc.V.Event)
	case kindExitLost:
		w.raw("type", `["end"]`)
		w.str("action", fields.TypeExitLost)
	case kindMsg:
		w.raw("type", `["info"]`)
		w.str("action", "message")
	case kindLife:
		if r.Life.V.End.Set {
			w.raw("type", `["end"]`) // sent at the process's exit
		} else {
			w.raw("type", `["info"]`) // an open life: alive at stop, or evicted
		}
		w.str("action", r.Type.V)
	default:
		w.raw("type", `["info"]`)
		w.str("action", r.Type.V)
	}
	w.str("module", ecsModule)
	w.optInt("sequence", r.Seq)
	switch k {
	case kindProc:
		if p := &r.Proc.V; p.Event == "exit" {
			w.exitReason(exitOf(p))
		}
	case kindLife:
		if r.Life.V.End.Set {
			w.exitReason(lifeExit(&r.Life.V))
		}
	case kindExitLost:
		w.str("reason", "the exit event was lost; the process was found gone")
	case kindGap:
		w.optStr("reason", r.Reason)
		ecsSpan(w, r)
	case kindSuppressed:
		ecsSpan(w, r)
	}
	w.close(m)
}

// exitReason writes reason, how a process ended, when the record says.
func (w *w) exitReason(e exit) {
	n, need := len(w.b), w.need
	w.key("reason")
	if b, ok := appendExitReason(w.b, e); ok {
		w.b = b
	} else {
		w.b, w.need = w.b[:n], need // nothing to say: no member
	}
}

// ecsSpan writes event.start, end and duration from a record's from and
// to.
func ecsSpan(w *w, r *fields.Record) {
	w.optStr("start", r.From)
	w.optStr("end", r.To)
	if from, ok := unixNano(r.From.V); ok && r.From.Set && r.To.Set {
		if to, ok := unixNano(r.To.V); ok && to >= from {
			w.int("duration", to-from)
		}
	}
}

// ecsProcess writes process.*, container.* and orchestrator.*: from the
// enrichment where the record has it, from the kernel's event otherwise.
func ecsProcess(w *w, r *fields.Record) {
	var p *fields.Proc
	if r.Proc.Set {
		p = &r.Proc.V
	}
	pr := &r.Process.V
	en := r.Process.Set

	m := w.open("process")
	if en {
		w.optStr("entity_id", pr.EntityID)
	}
	pid, tid := eventPIDs(p, pr)
	w.optInt("pid", pid)
	if tid.Set && tid.V != pid.V {
		t := w.open("thread")
		w.int("id", tid.V)
		w.close(t)
	}
	if name := processName(p, pr); name != "" {
		w.str("name", name)
	}
	if en {
		w.nonEmpty("executable", pr.Exe)
		ecsArgs(w, pr.Cmdline)
		w.nonEmpty("working_directory", pr.Cwd)
		w.optStr("start", pr.StartTime)
	}
	ecsCreds(w, p, pr)
	if p != nil && p.Event == "exit" {
		if c, ok := exitCode(p); ok {
			w.int("exit_code", c)
		}
		w.str("end", r.Time)
	}
	l := &r.Life.V
	if r.Life.Set && l.End.Set {
		if c, ok := shellExitCode(lifeExit(l)); ok {
			w.int("exit_code", c)
		}
		w.str("end", l.End.V)
	}
	switch {
	case r.Life.Set && l.DurationNs.Set:
		w.int("uptime", l.DurationNs.V/1e9)
	case en && pr.DurationNs.Set:
		w.int("uptime", pr.DurationNs.V/1e9)
	}
	switch {
	case r.Life.Set && len(l.Execs) > 1:
		// The images before the last, which process.* describes.
		a := w.openArray("previous")
		for _, im := range l.Execs[:len(l.Execs)-1] {
			w.elem()
			w.str("executable", im.Exe)
			w.strs("args", im.Cmdline)
			w.int("args_count", int64(len(im.Cmdline)))
			w.closeElem()
		}
		w.closeArray(a)
	case en && pr.PreviousExe.Set:
		a := w.openArray("previous")
		w.elem()
		w.str("executable", pr.PreviousExe.V)
		w.closeElem()
		w.closeArray(a)
	}
	ecsParent(w, p, r)
	w.close(m)

	if en && pr.ContainerID.Set {
		c := w.open("container")
		w.str("id", pr.ContainerID.V)
		w.close(c)
	}
	if en && pr.PodUID.Set {
		o := w.open("orchestrator")
		w.str("type", "kubernetes")
		res := w.open("resource")
		w.str("type", "pod")
		w.str("id", pr.PodUID.V)
		w.close(res)
		w.close(o)
	}
}

// ecsArgs writes args, args_count and command_line for a command line
// that is known and not empty.
func ecsArgs(w *w, args optional[[]string]) {
	if !args.Set || len(args.V) == 0 {
		return
	}
	w.strs("args", args.V)
	w.int("args_count", int64(len(args.V)))
	w.key("command_line")
	w.b = appendCommandLine(w.b, args.V)
}

// eventPIDs returns the process (thread group) id and the thread id the
// record is about: the table's where it describes the process, the
// event's otherwise (a fork's child).
func eventPIDs(p *fields.Proc, pr *fields.Process) (pid, tid optional[int64]) {
	if p != nil {
		if p.Event == "fork" {
			pid, tid = p.ChildTGID, p.ChildPID
		} else {
			pid, tid = p.TGID, p.PID
		}
	}
	if pr.PID.Set {
		pid = pr.PID
	}
	return pid, tid
}

// processName is the kernel's name of the process (comm: what ps shows;
// a comm event's new name), else the executable's base name.
func processName(p *fields.Proc, pr *fields.Process) string {
	if p != nil && p.Comm.Set {
		return p.Comm.V
	}
	if pr.Comm.Set && pr.Comm.V != "" {
		return pr.Comm.V
	}
	if pr.Exe.Set {
		return baseName(pr.Exe.V)
	}
	return ""
}

// ecsCreds writes the effective (user, group) and real (real_user,
// real_group) ids: a uid or gid event's new ids, else the table's. The
// table's user name is the real uid's.
func ecsCreds(w *w, p *fields.Proc, pr *fields.Process) {
	uid, euid, gid, egid := pr.UID, pr.EUID, pr.GID, pr.EGID
	if p != nil && p.RUID.Set {
		uid, euid = p.RUID, p.EUID
	}
	if p != nil && p.RGID.Set {
		gid, egid = p.RGID, p.EGID
	}
	name := pr.User
	if name.Set && (name.V == "" || !uid.Set || uid.V != pr.UID.V) {
		name = optional[string]{} // unknown, or not the name of this uid
	}
	if euid.Set {
		m := w.open("user")
		w.intStr("id", euid.V)
		if name.Set && uid.V == euid.V {
			w.str("name", name.V)
		}
		w.close(m)
	}
	if uid.Set {
		m := w.open("real_user")
		w.intStr("id", uid.V)
		if name.Set {
			w.str("name", name.V)
		}
		w.close(m)
	}
	if egid.Set {
		m := w.open("group")
		w.intStr("id", egid.V)
		w.close(m)
	}
	if gid.Set {
		m := w.open("real_group")
		w.intStr("id", gid.V)
		w.close(m)
	}
}

func ecsParent(w *w, p *fields.Proc, r *fields.Record) {
	m := w.open("parent")
	if r.Parent.Set {
		pa := &r.Parent.V
		w.optStr("entity_id", pa.EntityID)
		w.optInt("pid", pa.PID)
		if pa.Exe.Set && pa.Exe.V != "" {
			w.str("executable", pa.Exe.V)
			w.str("name", baseName(pa.Exe.V))
		}
		ecsArgs(w, pa.Cmdline)
	} else if p != nil && p.ParentTGID.Set {
		w.int("pid", p.ParentTGID.V)
		if p.ParentPID.Set && p.ParentPID.V != p.ParentTGID.V {
			t := w.open("thread")
			w.int("id", p.ParentPID.V)
			w.close(t)
		}
	}
	w.close(m)
}

// ecsMessage writes message, a sentence for people, on records that are
// not process events.
func ecsMessage(w *w, r *fields.Record, k kind) {
	switch k {
	case kindLoss:
		w.key("message")
		b := append(w.b, '"')
		b = strconv.AppendInt(b, r.Lost.V, 10)
		b = append(b, " connector messages lost (idx "...)
		b = strconv.AppendInt(b, r.Idx.V, 10)
		b = append(b, " val "...)
		b = strconv.AppendInt(b, r.Val.V, 10)
		if r.CPU.Set {
			b = append(b, " cpu "...)
			b = strconv.AppendInt(b, r.CPU.V, 10)
		}
		b = append(b, " seq "...)
		b = strconv.AppendInt(b, r.FromSeq.V, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r.ToSeq.V, 10)
		w.b = append(b, ')', '"')
	case kindGap:
		w.key("message")
		b := append(w.b, `"cnbridged was not listening from `...)
		b = append(b, r.From.V...)
		b = append(b, " to "...)
		b = append(b, r.To.V...)
		b = append(b, "; "...)
		b = strconv.AppendInt(b, r.PIDsAllocated.V, 10)
		w.b = append(b, ` process ids were allocated meanwhile"`...)
	case kindTapDropped:
		w.key("message")
		b := append(w.b, '"')
		b = strconv.AppendInt(b, r.Dropped.V, 10)
		w.b = append(b, ` lines not sent to a slow tap client"`...)
	case kindSuppressed:
		w.key("message")
		b := append(w.b, '"')
		b = strconv.AppendInt(b, r.Count.V, 10)
		b = append(b, " records not sent by route "...)
		b = strconv.AppendInt(b, r.Route.V, 10)
		b = append(b, "'s rate limit"...)
		if r.Overflow.V {
			b = append(b, " (keys beyond max_keys)"...)
		}
		w.b = append(b, '"')
	}
}

// ecsCustom writes the members ECS has no field for under "cnbridged",
// by their names on the line.
func ecsCustom(w *w, r *fields.Record, k kind) {
	m := w.open("cnbridged")
	switch k {
	case kindProc, kindProcNoPID:
		p := &r.Proc.V
		pm := w.open("proc")
		w.int("cpu", p.CPU)
		w.int("timestamp_ns", p.TimestampNs)
		w.optInt("tracer_pid", p.TracerPID)
		w.optInt("tracer_tgid", p.TracerTGID)
		w.optInt("exit_signal", p.ExitSignal)
		if p.Signal.Set {
			w.str("signal", string(p.Signal.V))
		}
		w.optBool("core_dumped", p.CoreDumped)
		w.optBool("thread", p.Thread)
		w.optInt("err", p.Err)
		w.optInt("what", p.What)
		w.close(pm)
		ecsCustomProcess(w, r)
	case kindExitLost:
		ecsCustomProcess(w, r)
	case kindLife:
		ecsCustomProcess(w, r)
		lm := w.open("life")
		lifeMembers(w, &r.Life.V)
		w.close(lm)
	case kindSuppressed:
		sm := w.open("suppressed")
		suppressedMembers(w, r)
		w.close(sm)
	case kindLoss:
		lm := w.open("loss")
		w.optInt("idx", r.Idx)
		w.optInt("val", r.Val)
		w.optInt("cpu", r.CPU)
		w.optInt("sender", r.Sender)
		w.optInt("from_seq", r.FromSeq)
		w.optInt("to_seq", r.ToSeq)
		w.optInt("lost", r.Lost)
		w.close(lm)
	case kindGap:
		gm := w.open("gap")
		w.optInt("pids_allocated", r.PIDsAllocated)
		w.optBool("pids_wrapped", r.PIDsWrapped)
		w.optBool("clean_stop", r.CleanStop)
		w.close(gm)
	case kindTapDropped:
		tm := w.open("tap")
		w.optInt("dropped", r.Dropped)
		w.close(tm)
	case kindMsg:
		cm := w.open("connector")
		w.optInt("idx", r.Idx)
		w.optInt("val", r.Val)
		w.optInt("ack", r.Ack)
		w.optInt("flags", r.Flags)
		w.optInt("len", r.Len)
		w.optInt("sender", r.Sender)
		w.optStr("data", r.Data)
		w.close(cm)
	default:
		ecsCustomOther(w, r)
	}
	w.close(m)
}

func ecsCustomProcess(w *w, r *fields.Record) {
	if !r.Process.Set && !r.Parent.Set && len(r.Ancestors) == 0 {
		return
	}
	pr := &r.Process.V
	m := w.open("process")
	w.optStr("cgroup", pr.Cgroup)
	w.optBool("cmdline_truncated", pr.CmdlineTruncated)
	w.optBool("stale", pr.Stale)
	w.optBool("seeded", pr.Seeded)
	if pr.Missing.Set {
		w.strs("missing", pr.Missing.V)
	}
	w.optBool("gone", pr.Gone)
	w.optBool("skipped", pr.Skipped)
	w.optInt("duration_ns", pr.DurationNs)
	w.close(m)
	if r.Parent.Set && r.Parent.V.Exited.Set {
		pm := w.open("parent")
		w.bool("exited", r.Parent.V.Exited.V)
		w.close(pm)
	}
	if len(r.Ancestors) > 0 {
		a := w.openArray("ancestors")
		for i := range r.Ancestors {
			an := &r.Ancestors[i]
			w.elem()
			w.optStr("entity_id", an.EntityID)
			w.optInt("pid", an.PID)
			w.optStr("exe", an.Exe)
			w.optBool("exited", an.Exited)
			w.closeElem()
		}
		w.closeArray(a)
	}
}

// ecsCustomOther keeps a record of a type this version has no mapping for
// (a marker type added to the line later) whole: every member the field
// model carries for it, counts and times included, under
// cnbridged.marker (a flattened object: its members are not mapped).
func ecsCustomOther(w *w, r *fields.Record) {
	w.key("marker")
	w.b = appendMembers(w.b, r)
}

// appendMembers appends, as one JSON object, every member of r but time
// and host, by the line's names. It goes through encoding/json and
// allocates: it serves only record types the encoders do not know.
func appendMembers(dst []byte, r *fields.Record) []byte {
	b, err := json.Marshal(r)
	var m map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return append(dst, "{}"...)
	}
	delete(m, "time")
	delete(m, "host")
	b, err = json.Marshal(m) // keys sorted
	if err != nil {
		return append(dst, "{}"...)
	}
	return append(dst, b...)
}

// suppressedMembers writes a suppression record's members by the line's
// names: route, count, overflow, and the key (path → value, paths in
// order).
func suppressedMembers(w *w, r *fields.Record) {
	w.optInt("route", r.Route)
	w.optInt("count", r.Count)
	w.optBool("overflow", r.Overflow)
	if r.Key.Set {
		w.key("key")
		w.b = append(w.b, '{')
		w.need = false
		keys := make([]string, 0, len(r.Key.V))
		for k := range r.Key.V {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w.key(k)
			w.b = appendString(w.b, r.Key.V[k])
		}
		w.b = append(w.b, '}') // {} for the overflow key, as on the line
		w.need = true
	}
}

// lifeMembers writes a life's members by the line's names.
func lifeMembers(w *w, l *fields.Life) {
	w.optStr("start", l.Start)
	w.optStr("end", l.End)
	w.optInt("duration_ns", l.DurationNs)
	w.bool("forked", l.Forked)
	if len(l.Execs) > 0 {
		a := w.openArray("execs")
		for _, im := range l.Execs {
			w.elem()
			w.str("time", im.Time)
			w.str("exe", im.Exe)
			w.strs("cmdline", im.Cmdline)
			w.closeElem()
		}
		w.closeArray(a)
	}
	w.optInt("execs_dropped", l.ExecsDropped)
	w.int("events", l.Events)
	w.optInt("exit_code", l.ExitCode)
	w.optInt("exit_status", l.ExitStatus)
	if l.Signal.Set {
		w.str("signal", string(l.Signal.V))
	}
	w.optBool("core_dumped", l.CoreDumped)
	w.optBool("open", l.Open)
	w.optBool("evicted", l.Evicted)
	w.optBool("exit_lost", l.ExitLost)
}
