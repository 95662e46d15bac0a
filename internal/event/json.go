package event

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proc"
)

// Encoder appends records as single-line JSON objects. It is the stable
// output contract documented in README.md. An Encoder holds no per-call
// state and is safe for concurrent use.
type Encoder struct {
	hostField []byte // `"host":"…"` with the host name escaped once
	host      string // the host name as the line shows it (Fields)
}

// NewEncoder returns an encoder that stamps every line with host.
func NewEncoder(host string) *Encoder {
	f := []byte(`"host":`)
	f = AppendString(f, host)
	return &Encoder{hostField: f, host: validUTF8(host)}
}

// timeLayout is RFC 3339 with nanoseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// TimeCache remembers the last formatted receive time. The records of a
// batch share one receive time, so a sink that keeps a TimeCache formats it
// once per batch. A TimeCache belongs to one goroutine.
type TimeCache struct {
	t   int64
	n   int
	buf [40]byte
}

// AppendJSON appends r as one JSON object followed by a newline.
func (e *Encoder) AppendJSON(dst []byte, r *Record) []byte {
	return e.AppendJSONCached(dst, r, nil)
}

// AppendJSONCached is AppendJSON formatting the time through tc (nil: no
// cache).
func (e *Encoder) AppendJSONCached(dst []byte, r *Record, tc *TimeCache) []byte {
	dst = append(dst, `{"time":"`...)
	switch {
	case tc == nil:
		dst = time.Unix(0, r.Time).UTC().AppendFormat(dst, timeLayout)
	case tc.n > 0 && tc.t == r.Time:
		dst = append(dst, tc.buf[:tc.n]...)
	default:
		f := time.Unix(0, r.Time).UTC().AppendFormat(tc.buf[:0], timeLayout)
		tc.t, tc.n = r.Time, len(f)
		dst = append(dst, f...)
	}
	dst = append(dst, `",`...)
	dst = append(dst, e.hostField...)
	if r.Kind == KindLoss {
		dst = append(dst, `,"type":"loss"`...)
		dst = appendUint(dst, `,"idx":`, uint64(r.Msg.ID.Idx))
		dst = appendUint(dst, `,"val":`, uint64(r.Msg.ID.Val))
		if r.Loss.HasCPU {
			dst = appendUint(dst, `,"cpu":`, uint64(r.Loss.CPU))
		}
		dst = appendUint(dst, `,"sender":`, uint64(r.Sender))
		dst = appendUint(dst, `,"from_seq":`, uint64(r.Loss.FromSeq))
		dst = appendUint(dst, `,"to_seq":`, uint64(r.Loss.ToSeq))
		dst = appendUint(dst, `,"lost":`, uint64(r.Loss.Lost))
		return append(dst, "}\n"...)
	}
	if r.Kind == KindGap && r.Gap != nil {
		g := r.Gap
		dst = append(dst, `,"type":"gap","reason":"not_listening","from":"`...)
		dst = time.Unix(0, g.From).UTC().AppendFormat(dst, timeLayout)
		dst = append(dst, `","to":"`...)
		dst = time.Unix(0, g.To).UTC().AppendFormat(dst, timeLayout)
		dst = append(dst, '"')
		dst = appendUint(dst, `,"pids_allocated":`, g.PIDsAllocated)
		if g.PIDsWrapped {
			dst = append(dst, `,"pids_wrapped":true`...)
		}
		if g.CleanStop {
			dst = append(dst, `,"clean_stop":true`...)
		} else {
			dst = append(dst, `,"clean_stop":false`...)
		}
		return append(dst, "}\n"...)
	}
	if r.Kind == KindSuppressed && r.Suppressed != nil {
		return appendSuppressed(dst, r.Suppressed)
	}
	if r.Kind == KindLife && r.Life != nil {
		return appendLife(dst, r.Life)
	}
	if r.Kind == KindExitLost {
		dst = append(dst, `,"type":"exit_lost"`...)
		if r.Enriched != nil && r.Enriched.Process != nil {
			dst = appendProcess(dst, r.Enriched.Process, cnmsg.ProcNone, r.Enriched)
		}
		return append(dst, "}\n"...)
	}
	m := &r.Msg
	dst = appendUint(dst, `,"idx":`, uint64(m.ID.Idx))
	dst = appendUint(dst, `,"val":`, uint64(m.ID.Val))
	dst = appendUint(dst, `,"seq":`, uint64(m.Seq))
	dst = appendUint(dst, `,"ack":`, uint64(m.Ack))
	dst = appendUint(dst, `,"flags":`, uint64(m.Flags))
	dst = appendUint(dst, `,"len":`, uint64(m.Len))
	dst = appendUint(dst, `,"sender":`, uint64(r.Sender))
	if r.HasProc {
		dst = appendProc(dst, &r.Proc)
		switch r.Enrich {
		case EnrichDone:
			dst = appendEnrichment(dst, r.Enriched, r.Proc.What)
		case EnrichSkipped, EnrichPending:
			dst = append(dst, `,"process":{"skipped":true}`...)
		}
	} else {
		dst = append(dst, `,"data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, m.Data)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

func appendProc(dst []byte, p *cnmsg.ProcEvent) []byte {
	dst = append(dst, `,"proc":{"event":"`...)
	dst = append(dst, p.What.String()...)
	dst = append(dst, '"')
	dst = appendUint(dst, `,"cpu":`, uint64(p.CPU))
	dst = appendUint(dst, `,"timestamp_ns":`, p.TimestampNs)
	switch p.What {
	case cnmsg.ProcNone:
		dst = appendUint(dst, `,"err":`, uint64(p.Err))
	case cnmsg.ProcFork:
		dst = appendUint(dst, `,"parent_pid":`, uint64(p.ParentPID))
		dst = appendUint(dst, `,"parent_tgid":`, uint64(p.ParentTGID))
		dst = appendUint(dst, `,"child_pid":`, uint64(p.ChildPID))
		dst = appendUint(dst, `,"child_tgid":`, uint64(p.ChildTGID))
		if p.ChildPID != p.ChildTGID {
			dst = append(dst, `,"thread":true`...)
		}
	case cnmsg.ProcExec, cnmsg.ProcSID:
		dst = appendPID(dst, p)
	case cnmsg.ProcUID:
		dst = appendPID(dst, p)
		dst = appendUint(dst, `,"ruid":`, uint64(p.RUID))
		dst = appendUint(dst, `,"euid":`, uint64(p.EUID))
	case cnmsg.ProcGID:
		dst = appendPID(dst, p)
		dst = appendUint(dst, `,"rgid":`, uint64(p.RGID))
		dst = appendUint(dst, `,"egid":`, uint64(p.EGID))
	case cnmsg.ProcPtrace:
		dst = appendPID(dst, p)
		dst = appendUint(dst, `,"tracer_pid":`, uint64(p.TracerPID))
		dst = appendUint(dst, `,"tracer_tgid":`, uint64(p.TracerTGID))
	case cnmsg.ProcComm:
		dst = appendPID(dst, p)
		dst = append(dst, `,"comm":`...)
		dst = appendBytesString(dst, p.CommBytes())
	case cnmsg.ProcCoredump:
		dst = appendPID(dst, p)
		dst = appendParent(dst, p)
	case cnmsg.ProcExit:
		dst = appendPID(dst, p)
		dst = appendUint(dst, `,"exit_code":`, uint64(p.ExitCode))
		if p.ExitSignal == noSignal {
			dst = append(dst, `,"exit_signal":-1`...)
		} else {
			dst = appendUint(dst, `,"exit_signal":`, uint64(p.ExitSignal))
		}
		dst = appendParent(dst, p)
		dst = appendExitStatus(dst, p.ExitCode)
		if p.PID != p.TGID {
			dst = append(dst, `,"thread":true`...)
		}
	default:
		dst = appendUint(dst, `,"what":`, uint64(p.What))
	}
	return append(dst, '}')
}

// noSignal is exit_signal -1 as the kernel sends it (an unsigned field):
// a thread's exit, which signals no parent.
const noSignal = 1<<32 - 1

func appendPID(dst []byte, p *cnmsg.ProcEvent) []byte {
	dst = appendUint(dst, `,"pid":`, uint64(p.PID))
	return appendUint(dst, `,"tgid":`, uint64(p.TGID))
}

func appendParent(dst []byte, p *cnmsg.ProcEvent) []byte {
	if !p.HasParent {
		return dst
	}
	dst = appendUint(dst, `,"parent_pid":`, uint64(p.ParentPID))
	return appendUint(dst, `,"parent_tgid":`, uint64(p.ParentTGID))
}

func appendUint(dst []byte, key string, v uint64) []byte {
	dst = append(dst, key...)
	return strconv.AppendUint(dst, v, 10)
}

// AppendString appends s as a JSON string.
func AppendString(dst []byte, s string) []byte {
	return appendBytesString(dst, s)
}

const hexDigits = "0123456789abcdef"

// appendBytesString appends b as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendBytesString[T string | []byte](dst []byte, b T) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				switch c {
				case '\n':
					dst = append(dst, '\\', 'n')
				case '\r':
					dst = append(dst, '\\', 'r')
				case '\t':
					dst = append(dst, '\\', 't')
				default:
					dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		// At most 4 bytes: the conversion stays on the stack.
		r, size := utf8.DecodeRuneInString(string(b[i:min(i+utf8.UTFMax, len(b))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, b[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// appendExitStatus decodes the wait status for people: exit_status for a
// normal exit; signal (its name) and core_dumped for a killed process.
func appendExitStatus(dst []byte, code uint32) []byte {
	st := DecodeExit(code)
	switch {
	case st.Exited:
		return appendUint(dst, `,"exit_status":`, uint64(st.Status))
	case st.SignalNum != 0:
		dst = append(dst, `,"signal":`...)
		name := st.Signal
		if name == "" {
			return appendUint(dst, "", uint64(st.SignalNum))
		}
		dst = AppendString(dst, name)
		if st.CoreDumped {
			dst = append(dst, `,"core_dumped":true`...)
		} else {
			dst = append(dst, `,"core_dumped":false`...)
		}
	}
	return dst
}

// appendEnrichment appends the "process", "parent" and "ancestors"
// members for an event of type what.
func appendEnrichment(dst []byte, en *Enrichment, what cnmsg.What) []byte {
	if en == nil || en.Process == nil {
		dst = append(dst, `,"process":{`...)
		if en != nil && en.PID != 0 {
			dst = appendUint(dst, `"pid":`, uint64(en.PID))
			dst = append(dst, ',')
		}
		return append(dst, `"gone":true}`...)
	}
	dst = appendProcess(dst, en.Process, what, en)
	if pa := en.Parent; pa != nil {
		dst = append(dst, `,"parent":{"entity_id":`...)
		dst = AppendString(dst, pa.EntityID)
		dst = appendUint(dst, `,"pid":`, uint64(pa.TGID))
		dst = append(dst, `,"exe":`...)
		dst = AppendString(dst, pa.Exe)
		dst = append(dst, `,"cmdline":`...)
		dst = appendStrings(dst, pa.Cmdline)
		if pa.Exited {
			dst = append(dst, `,"exited":true`...)
		}
		dst = append(dst, '}')
	}
	if len(en.Ancestors) > 0 {
		dst = append(dst, `,"ancestors":[`...)
		for i, a := range en.Ancestors {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"entity_id":`...)
			dst = AppendString(dst, a.EntityID)
			dst = appendUint(dst, `,"pid":`, uint64(a.TGID))
			dst = append(dst, `,"exe":`...)
			dst = AppendString(dst, a.Exe)
			if a.Exited {
				dst = append(dst, `,"exited":true`...)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return dst
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, a := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, a)
	}
	return append(dst, ']')
}

// appendProcess appends the "process" object.
func appendProcess(dst []byte, p *proc.Process, what cnmsg.What, en *Enrichment) []byte {
	dst = append(dst, `,"process":{"entity_id":`...)
	dst = AppendString(dst, p.EntityID)
	dst = appendUint(dst, `,"pid":`, uint64(p.PID))
	dst = appendUint(dst, `,"tgid":`, uint64(p.TGID))
	dst = appendUint(dst, `,"ppid":`, uint64(p.PPID))
	dst = append(dst, `,"exe":`...)
	dst = AppendString(dst, p.Exe)
	dst = append(dst, `,"cmdline":`...)
	dst = appendStrings(dst, p.Cmdline)
	if p.CmdlineTruncated {
		dst = append(dst, `,"cmdline_truncated":true`...)
	}
	dst = append(dst, `,"cwd":`...)
	dst = AppendString(dst, p.Cwd)
	dst = appendUint(dst, `,"uid":`, uint64(p.UID))
	dst = appendUint(dst, `,"euid":`, uint64(p.EUID))
	dst = appendUint(dst, `,"gid":`, uint64(p.GID))
	dst = appendUint(dst, `,"egid":`, uint64(p.EGID))
	dst = append(dst, `,"user":`...)
	dst = AppendString(dst, p.User)
	dst = append(dst, `,"comm":`...)
	dst = AppendString(dst, p.Comm)
	dst = append(dst, `,"cgroup":`...)
	dst = AppendString(dst, p.Cgroup)
	if p.ContainerID != "" {
		dst = append(dst, `,"container_id":`...)
		dst = AppendString(dst, p.ContainerID)
	}
	if p.PodUID != "" {
		dst = append(dst, `,"pod_uid":`...)
		dst = AppendString(dst, p.PodUID)
	}
	dst = append(dst, `,"start_time":"`...)
	dst = time.Unix(0, p.StartTime).UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, '"')
	if what == cnmsg.ProcExec && p.PreviousExe != "" {
		dst = append(dst, `,"previous_exe":`...)
		dst = AppendString(dst, p.PreviousExe)
	}
	if en.HasDuration {
		dst = appendUint(dst, `,"duration_ns":`, uint64(max(en.DurationNs, 0)))
	}
	if p.Stale {
		dst = append(dst, `,"stale":true`...)
	}
	if p.Seeded {
		dst = append(dst, `,"seeded":true`...)
	}
	if len(p.Missing) > 0 {
		dst = append(dst, `,"missing":`...)
		dst = appendStrings(dst, p.Missing)
	}
	if len(p.Late) > 0 {
		dst = append(dst, `,"late":`...)
		dst = appendStrings(dst, p.Late)
	}
	return append(dst, '}')
}

// appendSuppressed appends the members of a suppression record and ends
// the line.
func appendSuppressed(dst []byte, s *Suppressed) []byte {
	dst = append(dst, `,"type":"suppressed"`...)
	dst = appendUint(dst, `,"route":`, uint64(s.Route))
	dst = append(dst, `,"key":{`...)
	for i, kv := range s.Key {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, kv.Path)
		dst = append(dst, ':')
		dst = AppendString(dst, kv.Value)
	}
	dst = append(dst, '}')
	if s.Overflow {
		dst = append(dst, `,"overflow":true`...)
	}
	dst = appendUint(dst, `,"count":`, s.Count)
	dst = append(dst, `,"from":"`...)
	dst = time.Unix(0, s.From).UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","to":"`...)
	dst = time.Unix(0, s.To).UTC().AppendFormat(dst, timeLayout)
	return append(dst, "\"}\n"...)
}

// appendLife appends the members of a life record and ends the line. A
// life is one line per process life, not per event: its members are
// encoded by encoding/json from the field model, whose names and
// presence are the line's (TestFieldsMatchLine).
func appendLife(dst []byte, l *Life) []byte {
	dst = append(dst, `,"type":"life"`...)
	member := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			return // the model's types always marshal
		}
		dst = append(dst, `,"`...)
		dst = append(dst, name...)
		dst = append(dst, `":`...)
		dst = append(dst, b...)
	}
	if l.Process.Set {
		member("process", sanitizeProcess(l.Process.V))
	}
	if l.Parent.Set {
		member("parent", l.Parent.V)
	}
	if len(l.Ancestors) > 0 {
		member("ancestors", l.Ancestors)
	}
	member("life", l.Life)
	return append(dst, "}\n"...)
}

// sanitizeProcess is p with a nil cmdline written as [] (as the line
// writes it).
func sanitizeProcess(p fields.Process) fields.Process {
	if p.Cmdline.Set && p.Cmdline.V == nil {
		p.Cmdline.V = []string{}
	}
	return p
}
