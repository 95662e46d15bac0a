package event

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proc"
)

// Fields sets dst to r as its JSON line carries it (AppendJSON): the same
// members, present under the same conditions, so that filters and schema
// encoders read a routed record exactly as a reader of the line would.
// Strings and lists are shared with r (and the process table's immutable
// snapshots), not copied. Like AppendJSON, it reads r's enrichment only
// when r.Enrich is EnrichDone: a sink that did not ask for enrichment
// passes r.Plain().
func (e *Encoder) Fields(r *Record, dst *fields.Record) {
	*dst = fields.Record{Time: formatTime(r.Time), Host: e.host}
	switch r.Kind {
	case KindLoss:
		dst.Type = fields.Some(fields.TypeLoss)
		dst.Idx, dst.Val = num(r.Msg.ID.Idx), num(r.Msg.ID.Val)
		if r.Loss.HasCPU {
			dst.CPU = num(r.Loss.CPU)
		}
		dst.Sender = num(r.Sender)
		dst.FromSeq, dst.ToSeq, dst.Lost = num(r.Loss.FromSeq), num(r.Loss.ToSeq), num(r.Loss.Lost)
		return
	case KindGap:
		if g := r.Gap; g != nil {
			dst.Type, dst.Reason = fields.Some(fields.TypeGap), fields.Some("not_listening")
			dst.From, dst.To = fields.Some(formatTime(g.From)), fields.Some(formatTime(g.To))
			dst.PIDsAllocated = fields.Some(int64(g.PIDsAllocated))
			if g.PIDsWrapped {
				dst.PIDsWrapped = fields.Some(true)
			}
			dst.CleanStop = fields.Some(g.CleanStop)
			return
		}
	case KindSuppressed:
		if s := r.Suppressed; s != nil {
			dst.Type, dst.Route = fields.Some(fields.TypeSuppressed), fields.Some(int64(s.Route))
			key := make(map[string]string, len(s.Key))
			for _, kv := range s.Key {
				key[validUTF8(kv.Path)] = validUTF8(kv.Value)
			}
			dst.Key = fields.Some(key)
			if s.Overflow {
				dst.Overflow = fields.Some(true)
			}
			dst.Count = fields.Some(int64(s.Count))
			dst.From, dst.To = fields.Some(formatTime(s.From)), fields.Some(formatTime(s.To))
			return
		}
	case KindLife:
		if l := r.Life; l != nil {
			dst.Type = fields.Some(fields.TypeLife)
			dst.Process, dst.Parent, dst.Ancestors, dst.Life = l.Process, l.Parent, l.Ancestors, fields.Some(l.Life)
			if dst.Process.Set {
				dst.Process.V = sanitizeProcess(dst.Process.V)
			}
			return
		}
	case KindExitLost:
		dst.Type = fields.Some(fields.TypeExitLost)
		if r.Enriched != nil && r.Enriched.Process != nil {
			dst.Process = fields.Some(processFields(r.Enriched.Process, cnmsg.ProcNone, r.Enriched))
		}
		return
	}
	m := &r.Msg
	dst.Idx, dst.Val, dst.Seq, dst.Ack = num(m.ID.Idx), num(m.ID.Val), num(m.Seq), num(m.Ack)
	dst.Flags, dst.Len, dst.Sender = num(m.Flags), num(m.Len), num(r.Sender)
	if !r.HasProc {
		dst.Data = fields.Some(base64.StdEncoding.EncodeToString(m.Data))
		return
	}
	dst.Proc = fields.Some(procFields(&r.Proc))
	switch r.Enrich {
	case EnrichDone:
		enrichmentFields(r.Enriched, r.Proc.What, dst)
	case EnrichSkipped, EnrichPending:
		dst.Process = fields.Some(fields.Process{Skipped: fields.Some(true)})
	}
}

type unsigned interface {
	~uint16 | ~uint32 | ~uint64
}

func num[T unsigned](v T) fields.Opt[int64] { return fields.Some(int64(v)) }

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(timeLayout) }

// FormatTime formats a time (Unix nanoseconds) as the line writes it.
func FormatTime(ns int64) string { return formatTime(ns) }

// procFields mirrors appendProc.
func procFields(p *cnmsg.ProcEvent) fields.Proc {
	f := fields.Proc{Event: p.What.String(), CPU: int64(p.CPU), TimestampNs: int64(p.TimestampNs)}
	pid := func() { f.PID, f.TGID = num(p.PID), num(p.TGID) }
	parent := func() {
		if p.HasParent {
			f.ParentPID, f.ParentTGID = num(p.ParentPID), num(p.ParentTGID)
		}
	}
	switch p.What {
	case cnmsg.ProcNone:
		f.Err = num(p.Err)
	case cnmsg.ProcFork:
		f.ParentPID, f.ParentTGID = num(p.ParentPID), num(p.ParentTGID)
		f.ChildPID, f.ChildTGID = num(p.ChildPID), num(p.ChildTGID)
		if p.ChildPID != p.ChildTGID {
			f.Thread = fields.Some(true)
		}
	case cnmsg.ProcExec, cnmsg.ProcSID:
		pid()
	case cnmsg.ProcUID:
		pid()
		f.RUID, f.EUID = num(p.RUID), num(p.EUID)
	case cnmsg.ProcGID:
		pid()
		f.RGID, f.EGID = num(p.RGID), num(p.EGID)
	case cnmsg.ProcPtrace:
		pid()
		f.TracerPID, f.TracerTGID = num(p.TracerPID), num(p.TracerTGID)
	case cnmsg.ProcComm:
		pid()
		f.Comm = fields.Some(validUTF8(p.CommBytes()))
	case cnmsg.ProcCoredump:
		pid()
		parent()
	case cnmsg.ProcExit:
		pid()
		f.ExitCode, f.ExitSignal = num(p.ExitCode), num(p.ExitSignal)
		if p.ExitSignal == noSignal {
			f.ExitSignal = fields.Some(int64(-1))
		}
		parent()
		switch st := DecodeExit(p.ExitCode); {
		case st.Exited:
			f.ExitStatus = fields.Some(int64(st.Status))
		case st.SignalNum != 0:
			if st.Signal == "" {
				f.Signal = fields.Some(fields.Signal(strconv.Itoa(st.SignalNum)))
				break
			}
			f.Signal = fields.Some(fields.Signal(st.Signal))
			f.CoreDumped = fields.Some(st.CoreDumped)
		}
		if p.PID != p.TGID {
			f.Thread = fields.Some(true)
		}
	default:
		f.What = num(uint32(p.What))
	}
	return f
}

// enrichmentFields mirrors appendEnrichment.
func enrichmentFields(en *Enrichment, what cnmsg.What, dst *fields.Record) {
	if en == nil || en.Process == nil {
		p := fields.Process{Gone: fields.Some(true)}
		if en != nil && en.PID != 0 {
			p.PID = num(en.PID)
		}
		dst.Process = fields.Some(p)
		return
	}
	dst.Process = fields.Some(processFields(en.Process, what, en))
	if pa := en.Parent; pa != nil {
		f := fields.Parent{EntityID: fields.Some(validUTF8(pa.EntityID)), PID: num(pa.TGID),
			Exe: fields.Some(validUTF8(pa.Exe)), Cmdline: fields.Some(validStrings(pa.Cmdline))}
		if pa.Exited {
			f.Exited = fields.Some(true)
		}
		dst.Parent = fields.Some(f)
	}
	if len(en.Ancestors) > 0 {
		dst.Ancestors = make([]fields.Ancestor, len(en.Ancestors))
		for i, a := range en.Ancestors {
			dst.Ancestors[i] = fields.Ancestor{EntityID: fields.Some(validUTF8(a.EntityID)), PID: num(a.TGID), Exe: fields.Some(validUTF8(a.Exe))}
			if a.Exited {
				dst.Ancestors[i].Exited = fields.Some(true)
			}
		}
	}
}

// processFields mirrors appendProcess.
func processFields(p *proc.Process, what cnmsg.What, en *Enrichment) fields.Process {
	f := fields.Process{
		EntityID: fields.Some(validUTF8(p.EntityID)),
		PID:      num(p.PID), TGID: num(p.TGID), PPID: num(p.PPID),
		Exe:     fields.Some(validUTF8(p.Exe)),
		Cmdline: fields.Some(validStrings(p.Cmdline)),
		Cwd:     fields.Some(validUTF8(p.Cwd)),
		UID:     num(p.UID), EUID: num(p.EUID), GID: num(p.GID), EGID: num(p.EGID),
		User:      fields.Some(validUTF8(p.User)),
		Comm:      fields.Some(validUTF8(p.Comm)),
		Cgroup:    fields.Some(validUTF8(p.Cgroup)),
		StartTime: fields.Some(formatTime(p.StartTime)),
	}
	if p.CmdlineTruncated {
		f.CmdlineTruncated = fields.Some(true)
	}
	if p.ContainerID != "" {
		f.ContainerID = fields.Some(validUTF8(p.ContainerID))
	}
	if p.PodUID != "" {
		f.PodUID = fields.Some(validUTF8(p.PodUID))
	}
	if what == cnmsg.ProcExec && p.PreviousExe != "" {
		f.PreviousExe = fields.Some(validUTF8(p.PreviousExe))
	}
	if en.HasDuration {
		f.DurationNs = fields.Some(max(en.DurationNs, 0))
	}
	if p.Stale {
		f.Stale = fields.Some(true)
	}
	if p.Seeded {
		f.Seeded = fields.Some(true)
	}
	if len(p.Missing) > 0 {
		f.Missing = fields.Some(validStrings(p.Missing))
	}
	if len(p.Late) > 0 {
		f.Late = fields.Some(validStrings(p.Late))
	}
	return f
}

// validUTF8 returns s as the line's strings show it: each byte of an
// invalid UTF-8 sequence replaced by U+FFFD (appendBytesString).
func validUTF8[T string | []byte](s T) string {
	if utf8.ValidString(string(s)) {
		return string(s)
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(string(s[i:]))
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// validStrings is validUTF8 for a list, shared with ss when every string
// is valid.
func validStrings(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := make([]string, len(ss))
			copy(out, ss[:i])
			for j := i; j < len(ss); j++ {
				out[j] = validUTF8(ss[j])
			}
			return out
		}
	}
	if ss == nil {
		return []string{} // the line writes []
	}
	return ss
}

// TableRow sets dst to one row of the process table as fleet queries
// answer it: at (the time the table was read, as FormatTime writes it),
// the encoder's host, and the process, its parent and its ancestors (the
// parent first, as on an enriched event) described exactly as an enriched
// event describes them; a process the table remembers after its exit is
// marked exited, with how long it ran when the table saw its fork. parent
// and ancestors may be nil.
func (e *Encoder) TableRow(at string, p, parent *proc.Process, ancestors []*proc.Process, dst *fields.Record) {
	*dst = fields.Record{Time: at, Host: e.host}
	en := Enrichment{Process: p, Parent: parent, Ancestors: ancestors}
	if p.Exited && p.ForkNs != 0 && p.ExitNs >= p.ForkNs {
		en.DurationNs, en.HasDuration = int64(p.ExitNs-p.ForkNs), true // exact: both events seen
	}
	enrichmentFields(&en, cnmsg.ProcNone, dst)
	if p.Exited {
		dst.Process.V.Exited = fields.Some(true)
	}
}
