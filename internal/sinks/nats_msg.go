package sinks

import (
	"bytes"
	"net/textproto"
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

// msgIDPrefix is the part of every Nats-Msg-Id that names the publisher:
// the boot, the daemon (its host key) and the sink. ':' and '%' in the
// host and sink names are escaped (%3A, %25), so that no two publishers
// share a prefix. The record's own id (event.IDs) follows: deterministic
// for the fact the record is about, so that a retry (also after a restart
// of the daemon, or a second daemon configured with the same host and sink
// name publishing the same kernel stream) is dropped by JetStream's
// duplicate window, while records about different facts never share one.
func msgIDPrefix(bootID, host, sink string) string {
	// CR and LF become spaces, as the client sends them in a header.
	esc := strings.NewReplacer("%", "%25", ":", "%3A", "\r", " ", "\n", " ")
	return bootID + ":" + esc.Replace(host) + ":" + esc.Replace(sink) + ":"
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
	subject string
	reply   string // JetStream: the sink's inbox and the entry's id
	hdr     []byte // the headers, encoded (see appendHeader)
	body    []byte
	// copies counts the publishes of this message that a stream may have
	// stored: every publish the client took, less those the stream
	// answered without storing (409 in process, 503). A "duplicate"
	// answer is this sink's own earlier copy only when another copy
	// besides the one answered may have been stored.
	copies int
}

// notStored notes that the stream answered one copy without storing it.
func (m *natsMsg) notStored() { m.copies = max(m.copies-1, 0) }

// msgID returns the message's Nats-Msg-Id, read back from its headers (for
// logs).
func (m *natsMsg) msgID() string {
	_, v, _ := bytes.Cut(m.hdr, []byte("\r\n"+nats.MsgIdHdr+": "))
	v, _, _ = bytes.Cut(v, []byte("\r\n"))
	return string(v)
}

// entry is one message in the sink's in-flight ledger.
type entry = held[natsMsg]

// Header encoding, as the client encodes a nats.Msg's Header: the version
// line, "Name: value" lines, an empty line.
const (
	hdrLine = "NATS/1.0\r\n"
	crlf    = "\r\n"
)

// headerValue makes v what the client would send for it: trimmed of
// white space at both ends, CR and LF turned into spaces.
func headerValue(v string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(textproto.TrimString(v))
}

// fill encodes r into e: subject, headers, body and (JetStream) reply
// subject with the reply token id. It returns the message's size for the
// byte bounds. Everything goes into e's own buffers, reused from the
// message the entry held before, since r is valid only during Write and e
// may be sent again.
//
// The headers are encoded here, once, instead of by the client at every
// publish from a nats.Msg's Header map: walking the map twice and
// allocating per publish was the largest single cost of a NATS message
// (nats.go's Msg.headerBytes: 15-20 % of the daemon's CPU for core NATS).
// Values the sink writes are numbers, names and times; the host key, the
// one value from the config, is made what the client would send
// (headerValue) once.
func (s *NATS) fill(e *natsMsg, id uint64, r *event.Record) (size int) {
	e.copies = 0
	s.scratch = s.subj.append(s.scratch[:0], r)
	e.subject = s.subjects.get(s.scratch)

	if s.raw && r.Kind == event.KindMessage {
		e.body = append(e.body[:0], r.Msg.Data...)
	} else {
		if s.body == nil { // a sink built without NewNATS (tests)
			s.body = newBodyEncoder(s.enc, Body{Schema: s.cfg.Schema, Product: s.cfg.Product})
		}
		e.body = s.body.appendObject(e.body[:0], r)
	}

	h := append(e.hdr[:0], hdrLine...)
	// The Cn-* headers carry the record's fields where the body does not:
	// in format raw (the records the bridge adds itself, loss markers, gap
	// and exit_lost records, have a JSON body there, told apart by Cn-Type:
	// the line's "type"). A JSON line has them all, so JSON bodies get the
	// Nats-Msg-Id alone.
	if s.raw {
		h = appendUintHeader(h, HeaderIdx, uint64(r.Msg.ID.Idx))
		h = appendUintHeader(h, HeaderVal, uint64(r.Msg.ID.Val))
		h = appendHeader(h, HeaderHost, s.hostHeader)
		if cpu, ok := r.StreamCPU(); ok {
			h = appendUintHeader(h, HeaderCPU, uint64(cpu))
		}
		if r.Sender != 0 {
			h = appendUintHeader(h, HeaderSender, uint64(r.Sender))
		}
		switch r.Kind {
		case event.KindMessage:
			h = appendUintHeader(h, HeaderSeq, uint64(r.Msg.Seq))
			h = appendUintHeader(h, HeaderAck, uint64(r.Msg.Ack))
			if r.HasProc {
				h = appendHeader(h, HeaderEvent, r.Proc.What.String())
			}
			if r.Msg.Flags != 0 {
				h = appendUintHeader(h, HeaderFlags, uint64(r.Msg.Flags))
			}
			h = append(h, HeaderTime+": "...)
			h = appendTime(h, r.Time)
			h = append(h, crlf...)
		case event.KindLoss:
			h = appendHeader(h, HeaderType, r.Kind.String())
			h = appendUintHeader(h, HeaderFrom, uint64(r.Loss.FromSeq))
			h = appendUintHeader(h, HeaderTo, uint64(r.Loss.ToSeq))
			h = appendUintHeader(h, HeaderLost, uint64(r.Loss.Lost))
		default: // a record the bridge adds: its JSON line says the rest
			h = appendHeader(h, HeaderType, r.Kind.String())
		}
	}
	h = append(h, nats.MsgIdHdr+": "...)
	h = append(h, s.idPrefix...)
	h = s.ids.Append(h, r)
	h = append(h, crlf+crlf...)
	e.hdr = h

	e.reply = ""
	if s.cfg.JetStream {
		b := append(s.scratch[:0], s.inbox...)
		b = strconv.AppendUint(b, id, 10)
		e.reply = string(b)
		s.scratch = b
	}
	return len(e.subject) + len(e.reply) + len(e.hdr) + len(e.body) + 32 // the HPUB line, roughly
}

func appendHeader(h []byte, name, v string) []byte {
	h = append(h, name...)
	h = append(h, ": "...)
	h = append(h, v...)
	return append(h, crlf...)
}

func appendUintHeader(h []byte, name string, v uint64) []byte {
	h = append(h, name...)
	h = append(h, ": "...)
	h = strconv.AppendUint(h, v, 10)
	return append(h, crlf...)
}

func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}
