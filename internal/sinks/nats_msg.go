package sinks

import (
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Header names. Every message carries Nats-Msg-Id; format raw messages
// also carry these (format json bodies hold the same fields).
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
	HeaderTime   = "Cn-Time"   // receive time, RFC 3339 nanoseconds
	HeaderType   = "Cn-Type"   // "loss" on loss markers
	HeaderLost   = "Cn-Lost"   // loss markers: messages missing
	HeaderFrom   = "Cn-From-Seq"
	HeaderTo     = "Cn-To-Seq"
)

// Header bits: which headers an entry's map holds.
const (
	bitIdx uint32 = 1 << iota
	bitVal
	bitHost
	bitCPU
	bitSender
	bitType
	bitFrom
	bitTo
	bitLost
	bitSeq
	bitAck
	bitEvent
	bitFlags
	bitTime
	bitMsgID
)

// msgIDPrefix is the part of every Nats-Msg-Id that names the publisher:
// the boot, the daemon (its host key) and the sink. ':' and '%' in the
// host and sink names are escaped (%3A, %25), so that no two publishers
// share a prefix.
func msgIDPrefix(bootID, host, sink string) string {
	esc := strings.NewReplacer("%", "%25", ":", "%3A")
	return bootID + ":" + esc.Replace(host) + ":" + esc.Replace(sink) + ":"
}

// userIDs keeps the Nats-Msg-Ids of userspace senders' messages apart
// within one sink: the receive time is taken once per batch read from the
// socket, so a sender that does not number its messages (seq 0) can send
// two with the same port, time and seq. The n-th such message with one
// receive time gets "+n" after the time.
type userIDs struct {
	time int64
	n    uint32
}

// next returns the disambiguator for a userspace message received at t.
// Records reach a sink in receive order.
func (u *userIDs) next(t int64) uint32 {
	if t != u.time {
		u.time, u.n = t, 0
		return 0
	}
	u.n++
	return u.n
}

// appendMsgID appends r's Nats-Msg-Id. It is deterministic for a kernel
// event, so that a retry (also after a restart of the daemon, or a second
// daemon configured with the same host and sink name publishing the same
// kernel stream) is dropped by JetStream's duplicate window, and it names
// its publisher, so that two daemons (different host keys) or two sinks
// of one daemon never collide in one stream:
//
//	prefix:                     <boot id>:<host>:<sink>:
//	message from the kernel:    <prefix><idx>.<val>:<cpu>:<seq>
//	message from a userspace    <prefix><idx>.<val>@<port>:t<receive ns>[+<n>]:<seq>
//	sender (port id):
//	loss marker:                the same, with <seq> replaced by loss<from>-<to>
//
// <cpu> is "-" for messages that are not process events: the kernel numbers
// process events per CPU and other connector messages per id. A userspace
// sender's sequence numbers start again when it restarts, and the kernel
// may hand its port id to the next process, so its ids also carry the
// receive time, and n (see userIDs) when one time is shared.
func appendMsgID(dst []byte, prefix string, r *event.Record, n uint32) []byte {
	dst = append(dst, prefix...)
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Idx), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Val), 10)
	if r.Sender != 0 {
		dst = append(dst, '@')
		dst = strconv.AppendUint(dst, uint64(r.Sender), 10)
		dst = append(dst, ":t"...)
		dst = strconv.AppendInt(dst, r.Time, 10)
		if n > 0 {
			dst = append(dst, '+')
			dst = strconv.AppendUint(dst, uint64(n), 10)
		}
	} else if cpu, ok := recordCPU(r); ok {
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(cpu), 10)
	} else {
		dst = append(dst, ":"+NoCPU...)
	}
	dst = append(dst, ':')
	switch {
	case r.Kind == event.KindSuppressed && r.Suppressed != nil:
		// One report per key and time span.
		s := r.Suppressed
		dst = append(dst, "suppressed"...)
		dst = strconv.AppendInt(dst, int64(s.Route), 10)
		dst = append(dst, ":t"...)
		dst = strconv.AppendInt(dst, s.From, 10)
		dst = append(dst, '-')
		dst = strconv.AppendInt(dst, s.To, 10)
		dst = append(dst, ':')
		return strconv.AppendUint(dst, uint64(crc32.ChecksumIEEE([]byte(keyText(s)))), 16)
	case r.Kind == event.KindLife && r.Life != nil:
		// One life per process.
		dst = append(dst, "life:"...)
		dst = append(dst, r.Life.Process.V.EntityID.V...)
		dst = append(dst, ":t"...)
		return strconv.AppendInt(dst, r.Time, 10)
	}
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

// natsMsg is a message the sink holds (the payload of its ledger entry):
// encoded once, sent again as is.
type natsMsg struct {
	msg  nats.Msg
	body []byte
	vals [16]string // header values; the header map points into it
	keys uint32     // the headers the map holds (bit* constants)
}

// entry is one message in the sink's in-flight ledger.
type entry = held[natsMsg]

// fill encodes r into e: subject, headers, body and (JetStream) reply
// subject with the reply token id. It returns the message's size for the
// byte bounds. The body is copied into e's own buffer, since r is valid only
// during Write and e may be sent again.
//
// The header map is built once per entry and its values point into e.vals:
// while the next record carries the same header names (the common case),
// refilling it only stores the new values, with no map operation. The
// per-message strings (sequence, time, message id, reply subject) share one
// allocation.
func (s *NATS) fill(e *natsMsg, id uint64, r *event.Record) (size int) {
	s.scratch = s.subj.append(s.scratch[:0], r)
	e.msg.Subject = s.subjects.get(s.scratch)

	if s.raw && r.Kind == event.KindMessage {
		e.body = append(e.body[:0], r.Msg.Data...)
	} else {
		e.body = s.enc.AppendJSONCached(e.body[:0], r, &s.times)
		e.body = e.body[:len(e.body)-1] // the line without its newline
	}
	e.msg.Data = e.body

	// The headers are set in a fixed order, so the set of names (one bit
	// each, in keys) tells whether the map already holds them.
	var (
		names [len(natsMsg{}.vals)]string
		keys  uint32
		n     int
		// Values rendered into s.scratch, cut out of one string at the end.
		spans  [8]struct{ slot, from, to int }
		nspans int
	)
	add := func(bit uint32, k string) {
		names[n] = k
		keys |= bit
		n++
	}
	set := func(bit uint32, k, v string) {
		e.vals[n] = v
		add(bit, k)
	}
	b := s.scratch[:0]
	span := func(bit uint32, k string, from int) {
		spans[nspans] = struct{ slot, from, to int }{n, from, len(b)}
		nspans++
		add(bit, k)
	}
	// The Cn-* headers carry the record's fields where the body does not:
	// in format raw (a loss marker's JSON body there is told apart by
	// Cn-Type). A JSON line has them all, and the client's header encoding
	// is the largest per-message cost (it walks the map and allocates per
	// publish), so JSON bodies get the Nats-Msg-Id alone.
	if s.raw {
		set(bitIdx, HeaderIdx, s.nums.get(r.Msg.ID.Idx))
		set(bitVal, HeaderVal, s.nums.get(r.Msg.ID.Val))
		set(bitHost, HeaderHost, s.cfg.Host)
		if cpu, ok := recordCPU(r); ok {
			set(bitCPU, HeaderCPU, s.nums.get(cpu))
		}
		if r.Sender != 0 {
			from := len(b)
			b = strconv.AppendUint(b, uint64(r.Sender), 10)
			span(bitSender, HeaderSender, from)
		}
		if r.Kind == event.KindLoss {
			set(bitType, HeaderType, EventLoss)
			from := len(b)
			b = strconv.AppendUint(b, uint64(r.Loss.FromSeq), 10)
			span(bitFrom, HeaderFrom, from)
			from = len(b)
			b = strconv.AppendUint(b, uint64(r.Loss.ToSeq), 10)
			span(bitTo, HeaderTo, from)
			from = len(b)
			b = strconv.AppendUint(b, uint64(r.Loss.Lost), 10)
			span(bitLost, HeaderLost, from)
		} else {
			from := len(b)
			b = strconv.AppendUint(b, uint64(r.Msg.Seq), 10)
			span(bitSeq, HeaderSeq, from)
			set(bitAck, HeaderAck, s.nums.get(r.Msg.Ack))
			if r.HasProc {
				set(bitEvent, HeaderEvent, r.Proc.What.String())
			}
			if r.Msg.Flags != 0 {
				set(bitFlags, HeaderFlags, s.nums.get(uint32(r.Msg.Flags)))
			}
			from = len(b)
			b = appendTime(b, r.Time)
			span(bitTime, HeaderTime, from)
		}
	}
	from := len(b)
	var dup uint32
	if r.Sender != 0 {
		dup = s.userIDs.next(r.Time)
	}
	b = appendMsgID(b, s.idPrefix, r, dup)
	span(bitMsgID, nats.MsgIdHdr, from)
	replyFrom := len(b)
	if s.cfg.JetStream {
		b = append(b, s.inbox...)
		b = strconv.AppendUint(b, id, 10)
	}
	str := string(b)
	s.scratch = b
	for _, sp := range spans[:nspans] {
		e.vals[sp.slot] = str[sp.from:sp.to]
	}
	e.msg.Reply = str[replyFrom:]

	if e.msg.Header == nil || e.keys != keys {
		// Sized to fit: a map of up to 8 entries is one group, which the
		// client's header encoding iterates fastest.
		h := make(nats.Header, n)
		for i, k := range names[:n] {
			h[k] = e.vals[i : i+1 : i+1]
		}
		e.msg.Header, e.keys = h, keys
	}
	return len(e.msg.Subject) + len(e.body) + len(str) + 100 // header names and framing, roughly
}

func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}

// keyText is a suppression key as "path=value" pairs in order, for the
// message id.
func keyText(s *event.Suppressed) string {
	if s.Overflow {
		return "overflow"
	}
	var b []byte
	for _, kv := range s.Key {
		b = append(b, kv.Path...)
		b = append(b, '=')
		b = append(b, kv.Value...)
		b = append(b, 0)
	}
	return string(b)
}
