package event

import (
	"hash/crc32"
	"strconv"
)

// String returns the kind's name: the JSON line's "type" for the records
// the bridge adds itself ("message" for connector messages, which carry
// no type).
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindLoss:
		return "loss"
	case KindExitLost:
		return "exit_lost"
	case KindGap:
		return "gap"
	case KindSuppressed:
		return "suppressed"
	case KindLife:
		return "life"
	}
	return "kind" + strconv.Itoa(int(k))
}

// IDs gives records their identity: a string that names one fact (a
// kernel message, a range of lost messages, one restart, one process whose
// exit was lost), so that publishing it again — a retry, or the same fact
// published by a restarted daemon — gives the same id, while two records
// about different facts never share one. A NATS sink puts its publisher
// prefix (boot, host, sink) before it to make its Nats-Msg-Id; a new
// record kind gets its id here, with no change in any sink.
//
//	message from the kernel:     <idx>.<val>:<cpu>:<seq>    (<cpu> "-" unless a process event)
//	message from a userspace     <idx>.<val>@<port>:t<receive ns>[+<n>]:<seq>
//	sender (netlink port id):
//	loss marker:                 the same, with <seq> replaced by loss<from>-<to>
//	gap record:                  gap:<from ns>-<to ns>      (one restart: the time not listened)
//	exit_lost record:            exit_lost:<entity id>      (one process: boot, tgid, start)
//	suppressed record:           suppressed:<route>:t<from ns>-<to ns>:<crc32 of the key, hex>
//	                             (one report per route, key and time span)
//	life record:                 life:<entity id>:t<receive ns> (one process's life, as folded then)
//	a kind without a rule here:  <kind>:t<receive ns>+<n>
//
// The kernel numbers process events per CPU and other connector messages
// per id. A userspace sender's sequence starts again when it restarts and
// the kernel may hand its port id to the next process, so its ids also
// carry the receive time; the receive time is taken once per batch, so the
// n-th record with one receive time that needs it gets "+n". An IDs keeps
// that count and belongs to one sink (records reach a sink in receive
// order).
type IDs struct {
	time int64
	n    uint32
}

// next returns the number of a record received at t among those that
// need one (see IDs).
func (g *IDs) next(t int64) uint32 {
	if t != g.time {
		g.time, g.n = t, 0
		return 0
	}
	g.n++
	return g.n
}

// Append appends r's id to dst.
func (g *IDs) Append(dst []byte, r *Record) []byte {
	switch r.Kind {
	case KindMessage, KindLoss:
		return g.appendStream(dst, r)
	case KindGap:
		if r.Gap != nil {
			dst = append(dst, "gap:"...)
			dst = strconv.AppendInt(dst, r.Gap.From, 10)
			dst = append(dst, '-')
			return strconv.AppendInt(dst, r.Gap.To, 10)
		}
	case KindExitLost:
		if r.Enriched != nil && r.Enriched.Process != nil && r.Enriched.Process.EntityID != "" {
			dst = append(dst, "exit_lost:"...)
			return append(dst, r.Enriched.Process.EntityID...)
		}
	case KindSuppressed:
		if s := r.Suppressed; s != nil {
			dst = append(dst, "suppressed:"...)
			dst = strconv.AppendInt(dst, int64(s.Route), 10)
			dst = append(dst, ":t"...)
			dst = strconv.AppendInt(dst, s.From, 10)
			dst = append(dst, '-')
			dst = strconv.AppendInt(dst, s.To, 10)
			dst = append(dst, ':')
			return strconv.AppendUint(dst, uint64(keyCRC(s)), 16)
		}
	case KindLife:
		if l := r.Life; l != nil && l.Process.V.EntityID.V != "" {
			dst = append(dst, "life:"...)
			dst = append(dst, l.Process.V.EntityID.V...)
			dst = append(dst, ":t"...)
			return strconv.AppendInt(dst, r.Time, 10)
		}
	}
	// A record with nothing to name it by: unique within this sink, and
	// the same on every retry (a sink encodes a record once).
	dst = append(dst, r.Kind.String()...)
	dst = append(dst, ":t"...)
	dst = strconv.AppendInt(dst, r.Time, 10)
	dst = append(dst, '+')
	return strconv.AppendUint(dst, uint64(g.next(r.Time)), 10)
}

// keyCRC is the CRC-32 of a suppression key: its "path=value" pairs in
// order ("overflow" for the overflow key).
func keyCRC(s *Suppressed) uint32 {
	if s.Overflow {
		return crc32.ChecksumIEEE([]byte("overflow"))
	}
	var b []byte
	for _, kv := range s.Key {
		b = append(b, kv.Path...)
		b = append(b, '=')
		b = append(b, kv.Value...)
		b = append(b, 0)
	}
	return crc32.ChecksumIEEE(b)
}

// appendStream appends the id of a connector message or a loss marker:
// the sequence stream it belongs to, then its seq or the lost range.
func (g *IDs) appendStream(dst []byte, r *Record) []byte {
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Idx), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Val), 10)
	if r.Sender != 0 {
		dst = append(dst, '@')
		dst = strconv.AppendUint(dst, uint64(r.Sender), 10)
		dst = append(dst, ":t"...)
		dst = strconv.AppendInt(dst, r.Time, 10)
		if n := g.next(r.Time); n > 0 {
			dst = append(dst, '+')
			dst = strconv.AppendUint(dst, uint64(n), 10)
		}
	} else if cpu, ok := r.StreamCPU(); ok {
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(cpu), 10)
	} else {
		dst = append(dst, ":-"...)
	}
	dst = append(dst, ':')
	if r.Kind == KindLoss {
		dst = append(dst, "loss"...)
		dst = strconv.AppendUint(dst, uint64(r.Loss.FromSeq), 10)
		dst = append(dst, '-')
		return strconv.AppendUint(dst, uint64(r.Loss.ToSeq), 10)
	}
	return strconv.AppendUint(dst, uint64(r.Msg.Seq), 10)
}

// StreamCPU is the CPU whose sequence stream r belongs to, if any: a
// process event's, or the stream a loss marker is about.
func (r *Record) StreamCPU() (uint32, bool) {
	switch {
	case r.Kind == KindLoss:
		return r.Loss.CPU, r.Loss.HasCPU
	case r.Kind == KindMessage && r.HasProc:
		return r.Proc.CPU, true
	}
	return 0, false
}

// Kinds returns every record kind, in order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}
