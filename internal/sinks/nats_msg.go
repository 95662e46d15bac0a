package sinks

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Header names set on every published message.
const (
	HeaderIdx    = "Cn-Idx"
	HeaderVal    = "Cn-Val"
	HeaderSeq    = "Cn-Seq"
	HeaderAck    = "Cn-Ack"
	HeaderHost   = "Cn-Host"
	HeaderCPU    = "Cn-Cpu"    // process events and per-CPU loss markers
	HeaderEvent  = "Cn-Event"  // process events
	HeaderSender = "Cn-Sender" // userspace senders: their netlink port id
	HeaderFlags  = "Cn-Flags"  // when not 0
	HeaderTime   = "Cn-Time"   // raw format: receive time, RFC 3339 nanoseconds
	HeaderType   = "Cn-Type"   // "loss" on loss markers
	HeaderLost   = "Cn-Lost"   // loss markers: messages missing
	HeaderFrom   = "Cn-From-Seq"
	HeaderTo     = "Cn-To-Seq"
)

// appendMsgID appends r's Nats-Msg-Id. It is deterministic, so that a retry
// (and a second cnbridged on the same host publishing the same kernel
// stream) is dropped by JetStream's duplicate window:
//
//	message from the kernel:    <boot id>:<idx>.<val>:<cpu>:<seq>
//	message from a userspace    <boot id>:<idx>.<val>@<port>:t<receive ns>:<seq>
//	sender (port id):
//	loss marker:                the same, with <seq> replaced by loss<from>-<to>
//
// <cpu> is "-" for messages that are not process events: the kernel numbers
// process events per CPU and other connector messages per id. A userspace
// sender's sequence numbers start again when it restarts, and the kernel
// may hand its port id to the next process, so its ids also carry the
// receive time.
func appendMsgID(dst []byte, bootID string, r *event.Record) []byte {
	dst = append(dst, bootID...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Idx), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Val), 10)
	if r.Sender != 0 {
		dst = append(dst, '@')
		dst = strconv.AppendUint(dst, uint64(r.Sender), 10)
		dst = append(dst, ":t"...)
		dst = strconv.AppendInt(dst, r.Time, 10)
	} else if cpu, ok := recordCPU(r); ok {
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(cpu), 10)
	} else {
		dst = append(dst, ":"+NoCPU...)
	}
	dst = append(dst, ':')
	if r.Kind == event.KindLoss {
		dst = append(dst, "loss"...)
		dst = strconv.AppendUint(dst, uint64(r.Loss.FromSeq), 10)
		dst = append(dst, '-')
		return strconv.AppendUint(dst, uint64(r.Loss.ToSeq), 10)
	}
	return strconv.AppendUint(dst, uint64(r.Msg.Seq), 10)
}

// strCache interns the decimal strings of small numbers (ids, CPUs) so that
// header values for them do not allocate per message.
type strCache map[uint32]string

func (c strCache) get(v uint32) string {
	if s, ok := c[v]; ok {
		return s
	}
	s := strconv.FormatUint(uint64(v), 10)
	if len(c) < 4096 {
		c[v] = s
	}
	return s
}

// subjCache interns rendered subjects: a map lookup keyed by string(b)
// does not allocate, so a subject seen before costs no allocation.
type subjCache map[string]string

func (c subjCache) get(b []byte) string {
	if s, ok := c[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(c) >= 4096 {
		clear(c)
	}
	c[s] = s
	return s
}

// fill encodes r into e: subject, headers and body. The body is copied into
// e's own buffer, since r is valid only during Write and e may be sent again.
func (s *NATS) fill(e *entry, r *event.Record) {
	s.scratch = s.subj.append(s.scratch[:0], r)
	e.msg.Subject = s.subjects.get(s.scratch)

	if s.raw && r.Kind != event.KindLoss {
		e.body = append(e.body[:0], r.Msg.Data...)
	} else {
		e.body = s.enc.AppendJSON(e.body[:0], r)
		e.body = e.body[:len(e.body)-1] // the line without its newline
	}
	e.msg.Data = e.body

	h := e.msg.Header
	if h == nil {
		h = make(nats.Header, 12)
		e.msg.Header = h
	} else {
		clear(h)
	}
	n := 0
	set := func(k, v string) {
		e.vals[n] = v
		h[k] = e.vals[n : n+1 : n+1]
		n++
	}
	set(HeaderIdx, s.nums.get(r.Msg.ID.Idx))
	set(HeaderVal, s.nums.get(r.Msg.ID.Val))
	set(HeaderHost, s.cfg.Host)
	if cpu, ok := recordCPU(r); ok {
		set(HeaderCPU, s.nums.get(cpu))
	}
	if r.Sender != 0 {
		set(HeaderSender, strconv.FormatUint(uint64(r.Sender), 10))
	}
	if r.Kind == event.KindLoss {
		set(HeaderType, EventLoss)
		set(HeaderFrom, strconv.FormatUint(uint64(r.Loss.FromSeq), 10))
		set(HeaderTo, strconv.FormatUint(uint64(r.Loss.ToSeq), 10))
		set(HeaderLost, strconv.FormatUint(uint64(r.Loss.Lost), 10))
	} else {
		set(HeaderSeq, strconv.FormatUint(uint64(r.Msg.Seq), 10))
		set(HeaderAck, s.nums.get(r.Msg.Ack))
		if r.HasProc {
			set(HeaderEvent, r.Proc.What.String())
		}
		if r.Msg.Flags != 0 {
			set(HeaderFlags, s.nums.get(uint32(r.Msg.Flags)))
		}
		if s.raw {
			s.scratch = appendTime(s.scratch[:0], r.Time)
			set(HeaderTime, string(s.scratch))
		}
	}
	s.scratch = appendMsgID(s.scratch[:0], s.bootID, r)
	set(nats.MsgIdHdr, string(s.scratch))
	e.size = len(e.msg.Subject) + len(e.body) + 160 // headers, roughly
}

func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}
