// Package cnmsg decodes and encodes kernel connector datagrams: the netlink
// header (struct nlmsghdr), the connector header (struct cn_msg) and the
// process connector's struct proc_event.
//
// Decoding is pure and allocation-free: every length is checked before it is
// read, integers are read with binary.NativeEndian (connector payloads start
// at datagram byte 36, which is not 8-byte aligned, so nothing is cast), and
// payload slices point into the input instead of copying it.
package cnmsg

import (
	"encoding/binary"
	"errors"
)

// Sizes and limits, from include/uapi/linux/netlink.h and connector.h.
const (
	NlmsgHdrLen = 16    // sizeof(struct nlmsghdr)
	HeaderLen   = 20    // sizeof(struct cn_msg) without data
	MaxMsgSize  = 16384 // CONNECTOR_MAX_MSG_SIZE: cn_msg header plus data
	// MaxDatagram is the largest datagram the connector produces.
	MaxDatagram = NlmsgHdrLen + MaxMsgSize
	nlmsgAlign  = 4 // NLMSG_ALIGNTO
)

// Datagram is one received datagram, as the listener hands it on: the
// bytes (valid only until the handler it was given to returns) and who
// sent it.
type Datagram struct {
	Data   []byte
	Sender uint32 // source netlink port id (nl_pid): 0 is the kernel
	// Truncated is set when the datagram was larger than the buffer.
	Truncated bool
}

// Netlink message types (nlmsghdr.nlmsg_type) below NLMSG_MIN_TYPE.
const (
	NlmsgNoop    = 0x1 // NLMSG_NOOP
	NlmsgError   = 0x2 // NLMSG_ERROR
	NlmsgDone    = 0x3 // NLMSG_DONE: the type the connector sends and expects
	NlmsgOverrun = 0x4 // NLMSG_OVERRUN
)

// Well-known connector ids (include/uapi/linux/connector.h).
const (
	IdxProc = 1 // CN_IDX_PROC
	ValProc = 1 // CN_VAL_PROC
)

// Decode errors. They are sentinels so that returning one never allocates;
// Reason gives each a short label for metrics.
var (
	ErrShortNlmsghdr  = errors.New("cnmsg: datagram shorter than a netlink header")
	ErrNlmsgLen       = errors.New("cnmsg: nlmsg_len is shorter than its header or beyond the datagram")
	ErrNotConnector   = errors.New("cnmsg: netlink control message (error or overrun), not a connector message")
	ErrShortHeader    = errors.New("cnmsg: netlink payload shorter than a cn_msg header")
	ErrLenOverflow    = errors.New("cnmsg: cn_msg len is beyond the netlink message")
	ErrShortProcEvent = errors.New("cnmsg: payload shorter than its proc_event type needs")
)

// Reason returns a short, stable label for a decode error, for metrics.
func Reason(err error) string {
	switch err {
	case ErrShortNlmsghdr:
		return "short_nlmsghdr"
	case ErrNlmsgLen:
		return "bad_nlmsg_len"
	case ErrNotConnector:
		return "not_connector"
	case ErrShortHeader:
		return "short_cn_msg"
	case ErrLenOverflow:
		return "cn_len_overflow"
	case ErrShortProcEvent:
		return "short_proc_event"
	case nil:
		return ""
	}
	return "other"
}

// ID is a connector callback id (struct cb_id).
type ID struct {
	Idx uint32 // cb_id.idx
	Val uint32 // cb_id.val
}

// IsProc reports whether the id is the process connector's (1.1).
func (id ID) IsProc() bool { return id.Idx == IdxProc && id.Val == ValProc }

// NlHeader mirrors struct nlmsghdr.
type NlHeader struct {
	Len   uint32 // nlmsg_len
	Type  uint16 // nlmsg_type
	Flags uint16 // nlmsg_flags
	Seq   uint32 // nlmsg_seq
	PID   uint32 // nlmsg_pid: claimed by the sender, not trustworthy
}

// Message is one decoded connector message (struct cn_msg).
type Message struct {
	Nl    NlHeader
	ID    ID     // cn_msg.id
	Seq   uint32 // cn_msg.seq
	Ack   uint32 // cn_msg.ack
	Len   uint16 // cn_msg.len: length of Data
	Flags uint16 // cn_msg.flags
	Data  []byte // cn_msg.data, Len bytes, pointing into the datagram
}

// Next decodes the first netlink message of b and returns the bytes after it
// (aligned to NLMSG_ALIGNTO). NLMSG_NOOP messages are skipped. When it returns
// an error, rest is nil: the remainder of a malformed datagram is not trusted.
func Next(b []byte) (m Message, rest []byte, err error) {
	for {
		if len(b) < NlmsgHdrLen {
			return Message{}, nil, ErrShortNlmsghdr
		}
		m.Nl = NlHeader{
			Len:   binary.NativeEndian.Uint32(b[0:4]),
			Type:  binary.NativeEndian.Uint16(b[4:6]),
			Flags: binary.NativeEndian.Uint16(b[6:8]),
			Seq:   binary.NativeEndian.Uint32(b[8:12]),
			PID:   binary.NativeEndian.Uint32(b[12:16]),
		}
		if m.Nl.Len < NlmsgHdrLen || uint64(m.Nl.Len) > uint64(len(b)) {
			return Message{}, nil, ErrNlmsgLen
		}
		body := b[NlmsgHdrLen:m.Nl.Len]
		next := alignUp(int(m.Nl.Len))
		if next > len(b) {
			rest = b[len(b):]
		} else {
			rest = b[next:]
		}
		switch m.Nl.Type {
		case NlmsgNoop:
			if len(rest) == 0 {
				return Message{}, nil, ErrShortNlmsghdr
			}
			b = rest
			continue
		case NlmsgError, NlmsgOverrun:
			return Message{}, nil, ErrNotConnector
		}
		if err := decodeHeader(body, &m); err != nil {
			return Message{}, nil, err
		}
		return m, rest, nil
	}
}

// Decode decodes a datagram that holds exactly one connector message, which is
// what the kernel's connector sends. Bytes after it are ignored.
func Decode(b []byte) (Message, error) {
	m, _, err := Next(b)
	return m, err
}

func decodeHeader(body []byte, m *Message) error {
	if len(body) < HeaderLen {
		return ErrShortHeader
	}
	m.ID = ID{
		Idx: binary.NativeEndian.Uint32(body[0:4]),
		Val: binary.NativeEndian.Uint32(body[4:8]),
	}
	m.Seq = binary.NativeEndian.Uint32(body[8:12])
	m.Ack = binary.NativeEndian.Uint32(body[12:16])
	m.Len = binary.NativeEndian.Uint16(body[16:18])
	m.Flags = binary.NativeEndian.Uint16(body[18:20])
	if int(m.Len) > len(body)-HeaderLen {
		return ErrLenOverflow
	}
	m.Data = body[HeaderLen : HeaderLen+int(m.Len) : HeaderLen+int(m.Len)]
	return nil
}

func alignUp(n int) int { return (n + nlmsgAlign - 1) &^ (nlmsgAlign - 1) }

// Header holds the fields a sender chooses for a connector message.
type Header struct {
	ID    ID
	Seq   uint32
	Ack   uint32
	Flags uint16
}

// AppendMessage appends one netlink datagram carrying a connector message to
// dst: nlmsghdr (type NLMSG_DONE, the given nlmsg_seq and nlmsg_pid), cn_msg
// and data. It panics if data is longer than a connector message may be;
// callers check that with MaxMsgSize first.
func AppendMessage(dst []byte, nlSeq, nlPID uint32, h Header, data []byte) []byte {
	if len(data) > MaxMsgSize-HeaderLen {
		panic("cnmsg: data longer than CONNECTOR_MAX_MSG_SIZE")
	}
	total := NlmsgHdrLen + HeaderLen + len(data)
	dst = binary.NativeEndian.AppendUint32(dst, uint32(total))
	dst = binary.NativeEndian.AppendUint16(dst, NlmsgDone)
	dst = binary.NativeEndian.AppendUint16(dst, 0)
	dst = binary.NativeEndian.AppendUint32(dst, nlSeq)
	dst = binary.NativeEndian.AppendUint32(dst, nlPID)
	dst = binary.NativeEndian.AppendUint32(dst, h.ID.Idx)
	dst = binary.NativeEndian.AppendUint32(dst, h.ID.Val)
	dst = binary.NativeEndian.AppendUint32(dst, h.Seq)
	dst = binary.NativeEndian.AppendUint32(dst, h.Ack)
	dst = binary.NativeEndian.AppendUint16(dst, uint16(len(data)))
	dst = binary.NativeEndian.AppendUint16(dst, h.Flags)
	dst = append(dst, data...)
	// Pad the message, not dst: dst may already hold an unaligned prefix.
	for i := total; i < alignUp(total); i++ {
		dst = append(dst, 0)
	}
	return dst
}
