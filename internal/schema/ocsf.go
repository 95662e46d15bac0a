package schema

import (
	"strconv"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// OCSF classification (1.8.0): Process Activity in System Activity for
// process events and exit_lost; the Base Event for the records that are
// not a process's activity (loss, gap, other connector messages).
const (
	ocsfCategorySystem  = 1
	ocsfClassProcess    = 1007
	ocsfClassBase       = 0
	ocsfActivityOther   = 99
	ocsfSeverityInfo    = 1
	ocsfSeverityLow     = 2
	ocsfSeverityMedium  = 3
	ocsfStatusUnknown   = 0
	ocsfStatusSuccess   = 1
	ocsfFileRegular     = 1
	ocsfDeviceUnknown   = 0
	ocsfLaunchTypeFork  = 2
	ocsfLaunchTypeExec  = 3
	ocsfProductName     = "cnbridged"
	ocsfProductVendor   = "cnbridged"
	ocsfVendorEventCode = "event_code"
)

// ocsfActivity is a Process Activity's activity_id and its caption.
type ocsfActivity struct {
	id      int64
	caption string
}

// Process Activity activities (events/system/process_activity.json).
var (
	ocsfLaunch    = ocsfActivity{1, "Launch"}
	ocsfTerminate = ocsfActivity{2, "Terminate"}
	ocsfOpen      = ocsfActivity{3, "Open"}
	ocsfSetUserID = ocsfActivity{5, "Set User ID"}
)

// ocsfProcessActivity maps a process event to its activity: fork and
// exec are the two steps of a Launch (launch_type_id Fork, Exec), exit a
// Terminate, a uid change a Set User ID, a ptrace attach an Open (the
// tracer obtains the process to act on it). Everything else is 99 Other
// with the event's name as activity_name, as the schema asks.
func ocsfProcessActivity(p *fields.Proc) (a ocsfActivity, launchType int64) {
	switch p.Event {
	case "fork":
		return ocsfLaunch, ocsfLaunchTypeFork
	case "exec":
		return ocsfLaunch, ocsfLaunchTypeExec
	case "exit":
		return ocsfTerminate, 0
	case "uid":
		return ocsfSetUserID, 0
	case "ptrace":
		if p.TracerTGID.V != 0 {
			return ocsfOpen, 0
		}
	}
	return ocsfActivity{ocsfActivityOther, p.Event}, 0
}

// AppendOCSF appends r as one OCSF 1.8.0 event (a JSON object, no
// newline). prod names the writer in metadata.product. Members of r that
// OCSF has no attribute for go under unmapped, by their names on the line.
func AppendOCSF(dst []byte, r *fields.Record, prod Product) []byte {
	w := w{b: append(dst, '{')}
	k := kindOf(r)
	switch k {
	case kindProcNoPID:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, r.Proc.V.Event}, ocsfSeverityInfo)
	case kindProc:
		a, launch := ocsfProcessActivity(&r.Proc.V)
		ocsfClass(&w, ocsfClassProcess, a, ocsfSeverityInfo)
		if launch != 0 {
			w.int("launch_type_id", launch)
			if launch == ocsfLaunchTypeFork {
				w.str("launch_type", "Fork")
			} else {
				w.str("launch_type", "Exec")
			}
		}
		w.int("status_id", ocsfStatusSuccess)
		w.str("status", "Success")
	case kindLife:
		if r.Life.V.End.Set {
			ocsfClass(&w, ocsfClassProcess, ocsfTerminate, ocsfSeverityInfo)
		} else { // an open life: alive at stop, or evicted
			ocsfClass(&w, ocsfClassProcess, ocsfActivity{ocsfActivityOther, r.Type.V}, ocsfSeverityInfo)
		}
		w.int("status_id", ocsfStatusSuccess)
		w.str("status", "Success")
	case kindSuppressed:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, r.Type.V}, ocsfSeverityInfo)
	case kindExitLost:
		ocsfClass(&w, ocsfClassProcess, ocsfTerminate, ocsfSeverityInfo)
		w.int("status_id", ocsfStatusUnknown)
		w.str("status", "Unknown")
		w.str("status_detail", "the exit event was lost; the process was found gone")
	case kindLoss, kindGap:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, r.Type.V}, ocsfSeverityMedium)
	case kindTapDropped:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, r.Type.V}, ocsfSeverityLow)
	case kindMsg:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, "message"}, ocsfSeverityInfo)
	default:
		ocsfClass(&w, ocsfClassBase, ocsfActivity{ocsfActivityOther, r.Type.V}, ocsfSeverityInfo)
	}
	if ms, ok := unixMilli(r.Time); ok {
		w.int("time", ms)
	}
	ocsfMetadata(&w, r, k, prod)
	m := w.open("device")
	w.str("hostname", r.Host)
	w.int("type_id", ocsfDeviceUnknown)
	w.str("type", "Unknown")
	w.close(m)

	switch k {
	case kindProc:
		p := &r.Proc.V
		ocsfProcess(&w, "process", r, p)
		ocsfActor(&w, r, p)
		if p.Event == "exit" {
			if c, ok := exitCode(p); ok {
				w.int("exit_code", c)
			}
		}
	case kindExitLost:
		ocsfProcess(&w, "process", r, nil)
		ocsfActor(&w, r, nil)
	case kindLife:
		ocsfProcess(&w, "process", r, nil)
		ocsfActor(&w, r, nil)
		if l := &r.Life.V; l.End.Set {
			if c, ok := shellExitCode(lifeExit(l)); ok {
				w.int("exit_code", c)
			}
		}
	case kindSuppressed:
		w.optInt("count", r.Count)
		ocsfSpan(&w, r)
		w.key("message")
		w.b = append(w.b, '"')
		w.b = strconv.AppendInt(w.b, r.Count.V, 10)
		w.b = append(w.b, ` records not sent by a route's rate limit"`...)
	case kindLoss:
		w.optInt("count", r.Lost)
		w.key("message")
		w.b = append(w.b, '"')
		w.b = strconv.AppendInt(w.b, r.Lost.V, 10)
		w.b = append(w.b, ` connector messages lost"`...)
	case kindGap:
		ocsfSpan(&w, r)
		w.str("message", "cnbridged was not listening")
	case kindTapDropped:
		w.optInt("count", r.Dropped)
	}
	ocsfUnmapped(&w, r, k)
	return append(w.b, '}')
}

// ocsfSpan writes start_time, end_time and duration (ms) from a
// record's from and to.
func ocsfSpan(w *w, r *fields.Record) {
	if from, ok := unixMilli(r.From.V); ok && r.From.Set {
		w.int("start_time", from)
		if to, ok := unixMilli(r.To.V); ok && r.To.Set {
			w.int("end_time", to)
			w.int("duration", to-from)
		}
	}
}

// ocsfClass writes the classification: class, category, activity, type
// (class_uid × 100 + activity_id) and severity, ids with their captions.
func ocsfClass(w *w, class int64, a ocsfActivity, severity int64) {
	w.int("activity_id", a.id)
	w.str("activity_name", a.caption)
	if class == ocsfClassProcess {
		w.int("category_uid", ocsfCategorySystem)
		w.str("category_name", "System Activity")
		w.int("class_uid", ocsfClassProcess)
		w.str("class_name", "Process Activity")
		w.int("type_uid", ocsfClassProcess*100+a.id)
		if a.id == ocsfActivityOther {
			w.str("type_name", "Process Activity: Other")
		} else {
			w.key("type_name")
			w.b = append(w.b, `"Process Activity: `...)
			w.b = append(w.b, a.caption...)
			w.b = append(w.b, '"')
		}
	} else {
		w.int("category_uid", 0)
		w.str("category_name", "Uncategorized")
		w.int("class_uid", ocsfClassBase)
		w.str("class_name", "Base Event")
		w.int("type_uid", a.id)
		w.str("type_name", "Base Event: Other")
	}
	w.int("severity_id", severity)
	switch severity {
	case ocsfSeverityInfo:
		w.str("severity", "Informational")
	case ocsfSeverityLow:
		w.str("severity", "Low")
	case ocsfSeverityMedium:
		w.str("severity", "Medium")
	}
}

func ocsfMetadata(w *w, r *fields.Record, k kind, prod Product) {
	m := w.open("metadata")
	w.str("version", OCSFVersion)
	p := w.open("product")
	w.str("name", ocsfProductName)
	w.str("vendor_name", ocsfProductVendor)
	if prod.Version != "" {
		w.str("version", prod.Version)
	}
	w.close(p)
	switch k {
	case kindProc, kindProcNoPID:
		w.str(ocsfVendorEventCode, r.Proc.V.Event)
	case kindMsg:
		w.str(ocsfVendorEventCode, "message")
	default:
		w.str(ocsfVendorEventCode, r.Type.V)
	}
	w.str("original_time", r.Time)
	// The profiles whose attributes the event uses: host for a Base
	// Event's device (System Activity classes have device of their own),
	// container for process.container.
	switch {
	case k != kindProc && k != kindExitLost && k != kindLife: // a Base Event
		w.raw("profiles", `["host"]`)
	case r.Process.Set && (r.Process.V.ContainerID.Set || r.Process.V.PodUID.Set):
		w.raw("profiles", `["container"]`)
	}
	w.close(m)
}

// ocsfProcess writes the process object key: the table's description
// where the record has one, the event's ids otherwise.
func ocsfProcess(w *w, key string, r *fields.Record, p *fields.Proc) {
	pr := &r.Process.V
	en := r.Process.Set
	m := w.open(key)
	pid, tid := eventPIDs(p, pr)
	w.optInt("pid", pid)
	if tid.Set && tid.V != pid.V {
		w.int("ptid", tid.V)
	}
	if en {
		w.optStr("uid", pr.EntityID)
	}
	if name := processName(p, pr); name != "" {
		w.str("name", name)
	}
	if en {
		if pr.Cmdline.Set && len(pr.Cmdline.V) > 0 {
			w.key("cmd_line")
			w.b = appendCommandLine(w.b, pr.Cmdline.V)
		}
		if ms, ok := unixMilli(pr.StartTime.V); ok && pr.StartTime.Set {
			w.int("created_time", ms)
		}
		w.nonEmpty("working_directory", pr.Cwd)
		if pr.Exe.Set && pr.Exe.V != "" {
			ocsfFile(w, pr.Exe.V)
		}
	}
	if p != nil && p.Event == "exit" {
		if ms, ok := unixMilli(r.Time); ok {
			w.int("terminated_time", ms)
		}
	}
	if l := &r.Life.V; r.Life.Set && l.End.Set {
		if ms, ok := unixMilli(l.End.V); ok {
			w.int("terminated_time", ms)
		}
	}
	ocsfUser(w, p, pr)
	if en && (pr.ContainerID.Set || pr.PodUID.Set) {
		c := w.open("container")
		w.optStr("uid", pr.ContainerID)
		w.optStr("pod_uuid", pr.PodUID)
		w.close(c)
	}
	ocsfParent(w, r, p)
	ocsfLineage(w, r)
	w.close(m)
}

func ocsfFile(w *w, path string) {
	f := w.open("file")
	w.str("path", path)
	w.str("name", baseName(path))
	w.int("type_id", ocsfFileRegular)
	w.str("type", "Regular File")
	w.close(f)
}

// ocsfUser writes the user the process runs as: its effective uid (a uid
// event's new one), named when that is also its real uid.
func ocsfUser(w *w, p *fields.Proc, pr *fields.Process) {
	uid, euid := pr.UID, pr.EUID
	if p != nil && p.RUID.Set {
		uid, euid = p.RUID, p.EUID
	}
	if !euid.Set {
		return
	}
	m := w.open("user")
	w.intStr("uid", euid.V)
	if pr.User.Set && pr.User.V != "" && uid.V == euid.V && uid.V == pr.UID.V {
		w.str("name", pr.User.V)
	}
	w.close(m)
}

func ocsfParent(w *w, r *fields.Record, p *fields.Proc) {
	m := w.open("parent_process")
	if r.Parent.Set {
		pa := &r.Parent.V
		w.optInt("pid", pa.PID)
		w.optStr("uid", pa.EntityID)
		if pa.Exe.Set && pa.Exe.V != "" {
			w.str("name", baseName(pa.Exe.V))
		}
		if pa.Cmdline.Set && len(pa.Cmdline.V) > 0 {
			w.key("cmd_line")
			w.b = appendCommandLine(w.b, pa.Cmdline.V)
		}
		if pa.Exe.Set && pa.Exe.V != "" {
			ocsfFile(w, pa.Exe.V)
		}
	} else if p != nil && p.ParentTGID.Set {
		w.int("pid", p.ParentTGID.V)
		if p.ParentPID.Set && p.ParentPID.V != p.ParentTGID.V {
			w.int("ptid", p.ParentPID.V)
		}
	}
	w.close(m)
}

// ocsfLineage writes ancestry (the parent's ancestors, nearest first, as
// process entities) and lineage (deprecated since 1.4.0 for ancestry,
// kept for consumers of older versions: the executables from the oldest
// known ancestor down to the process, as the schema's example lists
// them).
func ocsfLineage(w *w, r *fields.Record) {
	if len(r.Ancestors) > 0 {
		a := w.openArray("ancestry")
		for i := range r.Ancestors {
			an := &r.Ancestors[i]
			w.elem()
			w.optInt("pid", an.PID)
			w.optStr("uid", an.EntityID)
			if an.Exe.Set && an.Exe.V != "" {
				w.str("path", an.Exe.V)
				w.str("name", baseName(an.Exe.V))
			}
			w.closeElem()
		}
		w.closeArray(a)
	}
	if len(r.Ancestors) == 0 && !r.Parent.Set {
		return
	}
	w.key("lineage")
	w.b = append(w.b, '[')
	n := 0
	add := func(exe optional[string]) {
		if !exe.Set || exe.V == "" {
			return
		}
		if n > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendString(w.b, exe.V)
		n++
	}
	for i := len(r.Ancestors) - 1; i >= 0; i-- {
		add(r.Ancestors[i].Exe)
	}
	if len(r.Ancestors) == 0 {
		add(r.Parent.V.Exe) // without ancestors, the parent alone
	}
	add(r.Process.V.Exe)
	w.b = append(w.b, ']')
}

// ocsfActor writes who did it: the parent for a fork and an exec (the
// process that launched), the tracer for a ptrace attach, the process
// itself otherwise (an exit is most commonly reflexive, as the schema
// says, and so are credential and name changes).
func ocsfActor(w *w, r *fields.Record, p *fields.Proc) {
	m := w.open("actor")
	pm := w.open("process")
	switch {
	case p != nil && (p.Event == "fork" || p.Event == "exec") && r.Parent.Set:
		pa := &r.Parent.V
		w.optInt("pid", pa.PID)
		w.optStr("uid", pa.EntityID)
		if pa.Exe.Set && pa.Exe.V != "" {
			w.str("name", baseName(pa.Exe.V))
			ocsfFile(w, pa.Exe.V)
		}
	case p != nil && p.Event == "fork":
		w.optInt("pid", p.ParentTGID)
		if p.ParentPID.Set && p.ParentPID.V != p.ParentTGID.V {
			w.int("ptid", p.ParentPID.V)
		}
	case p != nil && p.Event == "ptrace" && p.TracerTGID.V != 0:
		w.optInt("pid", p.TracerTGID)
		if p.TracerPID.Set && p.TracerPID.V != p.TracerTGID.V {
			w.int("ptid", p.TracerPID.V)
		}
	default:
		pr := &r.Process.V
		pid, tid := eventPIDs(p, pr)
		w.optInt("pid", pid)
		if tid.Set && tid.V != pid.V {
			w.int("ptid", tid.V)
		}
		w.optStr("uid", pr.EntityID)
		if name := processName(p, pr); name != "" {
			w.str("name", name)
		}
	}
	w.close(pm)
	w.close(m)
}

// ocsfUnmapped writes, by their names on the line, the members OCSF has
// no attribute for.
func ocsfUnmapped(w *w, r *fields.Record, k kind) {
	m := w.open("unmapped")
	switch k {
	case kindProc, kindProcNoPID:
		p := &r.Proc.V
		w.optInt("seq", r.Seq)
		pm := w.open("proc")
		w.int("cpu", p.CPU)
		w.int("timestamp_ns", p.TimestampNs)
		w.optInt("exit_code", p.ExitCode)
		w.optInt("exit_signal", p.ExitSignal)
		if p.Signal.Set {
			w.str("signal", string(p.Signal.V))
		}
		w.optBool("core_dumped", p.CoreDumped)
		w.optBool("thread", p.Thread)
		w.optInt("ruid", p.RUID)
		w.optInt("rgid", p.RGID)
		w.optInt("egid", p.EGID)
		w.optInt("err", p.Err)
		w.optInt("what", p.What)
		w.close(pm)
		ocsfUnmappedProcess(w, r)
	case kindExitLost:
		ocsfUnmappedProcess(w, r)
	case kindLife:
		ocsfUnmappedProcess(w, r)
		lm := w.open("life")
		lifeMembers(w, &r.Life.V)
		w.close(lm)
	case kindSuppressed:
		suppressedMembers(w, r)
	case kindLoss:
		w.optInt("idx", r.Idx)
		w.optInt("val", r.Val)
		w.optInt("cpu", r.CPU)
		w.optInt("sender", r.Sender)
		w.optInt("from_seq", r.FromSeq)
		w.optInt("to_seq", r.ToSeq)
		w.optInt("lost", r.Lost)
	case kindGap:
		w.optStr("reason", r.Reason)
		w.optInt("pids_allocated", r.PIDsAllocated)
		w.optBool("pids_wrapped", r.PIDsWrapped)
		w.optBool("clean_stop", r.CleanStop)
	case kindTapDropped:
		w.optInt("dropped", r.Dropped)
	case kindMsg:
		w.optInt("idx", r.Idx)
		w.optInt("val", r.Val)
		w.optInt("seq", r.Seq)
		w.optInt("ack", r.Ack)
		w.optInt("flags", r.Flags)
		w.optInt("len", r.Len)
		w.optInt("sender", r.Sender)
		w.optStr("data", r.Data)
	default:
		// Every member the model carries for a type this version has no
		// mapping for (appendMembers), type included.
		w.b = w.b[:m.pos]
		w.need = m.need
		w.key("unmapped")
		w.b = appendMembers(w.b, r)
		return
	}
	w.close(m)
}

func ocsfUnmappedProcess(w *w, r *fields.Record) {
	if r.Parent.Set && r.Parent.V.Exited.Set {
		pm := w.open("parent")
		w.bool("exited", r.Parent.V.Exited.V)
		w.close(pm)
	}
	if exitedAncestors(r) > 0 {
		a := w.openArray("ancestors")
		for i := range r.Ancestors {
			w.elem()
			w.optInt("pid", r.Ancestors[i].PID)
			w.optBool("exited", r.Ancestors[i].Exited)
			w.closeElem()
		}
		w.closeArray(a)
	}
	if !r.Process.Set {
		return
	}
	pr := &r.Process.V
	m := w.open("process")
	w.optInt("ppid", pr.PPID)
	w.optInt("uid", pr.UID)
	w.optInt("gid", pr.GID)
	w.optInt("egid", pr.EGID)
	w.optStr("cgroup", pr.Cgroup)
	w.optStr("previous_exe", pr.PreviousExe)
	w.optInt("duration_ns", pr.DurationNs)
	w.optBool("cmdline_truncated", pr.CmdlineTruncated)
	w.optBool("stale", pr.Stale)
	w.optBool("seeded", pr.Seeded)
	if pr.Missing.Set {
		w.strs("missing", pr.Missing.V)
	}
	w.optBool("gone", pr.Gone)
	w.optBool("skipped", pr.Skipped)
	w.close(m)
}

// exitedAncestors counts the ancestors the table marks exited.
func exitedAncestors(r *fields.Record) int {
	n := 0
	for i := range r.Ancestors {
		if r.Ancestors[i].Exited.V {
			n++
		}
	}
	return n
}
