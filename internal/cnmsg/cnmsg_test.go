package cnmsg_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

var ne = binary.NativeEndian

// nlmsg builds one netlink message by hand: nlmsghdr (16 bytes: len@0 type@4
// flags@6 seq@8 pid@12) followed by body. nlLen is written as given, so tests
// can lie about it.
func nlmsg(nlLen uint32, typ uint16, body []byte) []byte {
	b := make([]byte, 16, 16+len(body))
	ne.PutUint32(b[0:], nlLen)
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], 0x0102)
	ne.PutUint32(b[8:], 77)
	ne.PutUint32(b[12:], 0)
	return append(b, body...)
}

// cnBody builds a cn_msg by hand (20 bytes: idx@0 val@4 seq@8 ack@12 len@16
// flags@18) followed by data. cnLen is written as given.
func cnBody(idx, val, seq, ack uint32, cnLen, flags uint16, data []byte) []byte {
	b := make([]byte, 20, 20+len(data))
	ne.PutUint32(b[0:], idx)
	ne.PutUint32(b[4:], val)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], ack)
	ne.PutUint16(b[16:], cnLen)
	ne.PutUint16(b[18:], flags)
	return append(b, data...)
}

// datagram is a well-formed connector datagram carrying data.
func datagram(data []byte) []byte {
	body := cnBody(1, 1, 9, 10, uint16(len(data)), 0, data)
	return nlmsg(uint32(16+len(body)), cnmsg.NlmsgDone, body)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

var msgOpts = cmp.Options{cmpopts.EquateEmpty()}

func TestNext(t *testing.T) {
	data := []byte("hello")
	good := datagram(data)
	wantGood := cnmsg.Message{
		Nl:   cnmsg.NlHeader{Len: 41, Type: cnmsg.NlmsgDone, Flags: 0x0102, Seq: 77, PID: 0},
		ID:   cnmsg.ID{Idx: 1, Val: 1},
		Seq:  9,
		Ack:  10,
		Len:  5,
		Data: data,
	}
	second := datagram([]byte{1, 2, 3, 4})
	wantSecond := wantGood
	wantSecond.Nl.Len = 40
	wantSecond.Len = 4
	wantSecond.Data = []byte{1, 2, 3, 4}

	noop := nlmsg(16, cnmsg.NlmsgNoop, nil)
	noopWithBody := nlmsg(19, cnmsg.NlmsgNoop, []byte{9, 9, 9})

	tests := []struct {
		name     string
		in       []byte
		want     cnmsg.Message
		wantRest []byte
		wantErr  error
	}{
		{name: "good", in: good, want: wantGood, wantRest: []byte{}},
		{name: "good with padding", in: pad4(good), want: wantGood, wantRest: []byte{}},
		{name: "two messages", in: concat(pad4(good), second), want: wantGood, wantRest: second},
		{name: "unpadded second message", in: concat(good, second), want: wantGood,
			wantRest: concat(good, second)[44:]},
		{
			name: "flags and other id",
			in:   nlmsg(36, cnmsg.NlmsgDone, cnBody(7, 1, 0xffffffff, 0, 0, 0xbeef, nil)),
			want: cnmsg.Message{
				Nl:    cnmsg.NlHeader{Len: 36, Type: cnmsg.NlmsgDone, Flags: 0x0102, Seq: 77},
				ID:    cnmsg.ID{Idx: 7, Val: 1},
				Seq:   0xffffffff,
				Flags: 0xbeef,
			},
			wantRest: []byte{},
		},
		{name: "empty", in: nil, wantErr: cnmsg.ErrShortNlmsghdr},
		{name: "short nlmsghdr", in: good[:15], wantErr: cnmsg.ErrShortNlmsghdr},
		{name: "nlmsg_len 0", in: nlmsg(0, cnmsg.NlmsgDone, good[16:]), wantErr: cnmsg.ErrNlmsgLen},
		{name: "nlmsg_len 15", in: nlmsg(15, cnmsg.NlmsgDone, good[16:]), wantErr: cnmsg.ErrNlmsgLen},
		{name: "nlmsg_len beyond datagram", in: nlmsg(42, cnmsg.NlmsgDone, good[16:]), wantErr: cnmsg.ErrNlmsgLen},
		{name: "nlmsg_len huge", in: nlmsg(0xffffffff, cnmsg.NlmsgDone, good[16:]), wantErr: cnmsg.ErrNlmsgLen},
		{name: "NLMSG_ERROR", in: nlmsg(36, cnmsg.NlmsgError, make([]byte, 20)), wantErr: cnmsg.ErrNotConnector},
		{name: "NLMSG_OVERRUN", in: nlmsg(16, cnmsg.NlmsgOverrun, nil), wantErr: cnmsg.ErrNotConnector},
		{name: "NLMSG_NOOP skipped", in: concat(noop, good), want: wantGood, wantRest: []byte{}},
		{name: "NLMSG_NOOP with body skipped", in: concat(pad4(noopWithBody), noop, good), want: wantGood, wantRest: []byte{}},
		{name: "NLMSG_NOOP alone", in: noop, wantErr: cnmsg.ErrShortNlmsghdr},
		{name: "NLMSG_NOOP then error", in: concat(noop, nlmsg(16, cnmsg.NlmsgError, nil)), wantErr: cnmsg.ErrNotConnector},
		{name: "no cn_msg", in: nlmsg(16, cnmsg.NlmsgDone, nil), wantErr: cnmsg.ErrShortHeader},
		{name: "short cn_msg", in: nlmsg(35, cnmsg.NlmsgDone, good[16:35]), wantErr: cnmsg.ErrShortHeader},
		{
			// The datagram holds the bytes, but nlmsg_len says the cn_msg
			// ends earlier: the message, not the datagram, bounds cn_msg.len.
			name:    "short cn_msg inside longer datagram",
			in:      nlmsg(35, cnmsg.NlmsgDone, good[16:]),
			wantErr: cnmsg.ErrShortHeader,
		},
		{
			name:    "cn_msg.len beyond message",
			in:      nlmsg(41, cnmsg.NlmsgDone, cnBody(1, 1, 0, 0, 6, 0, data)),
			wantErr: cnmsg.ErrLenOverflow,
		},
		{
			name:    "cn_msg.len beyond message inside longer datagram",
			in:      nlmsg(40, cnmsg.NlmsgDone, cnBody(1, 1, 0, 0, 5, 0, data)),
			wantErr: cnmsg.ErrLenOverflow,
		},
		{
			name:    "cn_msg.len max",
			in:      nlmsg(41, cnmsg.NlmsgDone, cnBody(1, 1, 0, 0, 0xffff, 0, data)),
			wantErr: cnmsg.ErrLenOverflow,
		},
		{
			name: "cn_msg.len shorter than message",
			in:   nlmsg(41, cnmsg.NlmsgDone, cnBody(1, 1, 9, 10, 2, 0, data)),
			want: func() cnmsg.Message {
				m := wantGood
				m.Len = 2
				m.Data = data[:2]
				return m
			}(),
			wantRest: []byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := cnmsg.Next(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Next() error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, msgOpts); diff != "" {
				t.Errorf("Next() message mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr != nil {
				if rest != nil {
					t.Errorf("Next() rest = %v, want nil on error", rest)
				}
				return
			}
			if diff := cmp.Diff(tt.wantRest, rest); diff != "" {
				t.Errorf("Next() rest mismatch (-want +got):\n%s", diff)
			}
			if got, want := int(got.Len), len(got.Data); got != want {
				t.Errorf("Len = %d, len(Data) = %d; want equal", got, want)
			}
		})
	}
}

func TestNextWalksDatagram(t *testing.T) {
	msgs := [][]byte{[]byte("a"), nil, []byte("abcd"), []byte("abcdefg")}
	var b []byte
	for _, d := range msgs {
		b = pad4(concat(b, datagram(d)))
	}
	b = concat(nlmsg(16, cnmsg.NlmsgNoop, nil), b)
	var got [][]byte
	for len(b) > 0 {
		m, rest, err := cnmsg.Next(b)
		if err != nil {
			t.Fatalf("Next() error = %v after %d messages", err, len(got))
		}
		got = append(got, m.Data)
		b = rest
	}
	if diff := cmp.Diff(msgs, got, msgOpts); diff != "" {
		t.Errorf("data mismatch (-want +got):\n%s", diff)
	}
}

func TestDecode(t *testing.T) {
	good := datagram([]byte{1, 2, 3, 4})
	tests := []struct {
		name     string
		in       []byte
		wantData []byte
		wantErr  error
	}{
		{name: "good", in: good, wantData: []byte{1, 2, 3, 4}},
		{name: "trailing message ignored", in: concat(good, datagram([]byte{5})), wantData: []byte{1, 2, 3, 4}},
		{name: "trailing garbage ignored", in: concat(good, []byte{0xff, 0xff}), wantData: []byte{1, 2, 3, 4}},
		{name: "short", in: good[:10], wantErr: cnmsg.ErrShortNlmsghdr},
		{name: "bad len", in: nlmsg(100, cnmsg.NlmsgDone, good[16:]), wantErr: cnmsg.ErrNlmsgLen},
		{name: "error", in: nlmsg(16, cnmsg.NlmsgError, nil), wantErr: cnmsg.ErrNotConnector},
		{name: "short cn_msg", in: nlmsg(20, cnmsg.NlmsgDone, good[16:20]), wantErr: cnmsg.ErrShortHeader},
		{name: "overflow", in: nlmsg(37, cnmsg.NlmsgDone, cnBody(1, 1, 0, 0, 2, 0, []byte{1})), wantErr: cnmsg.ErrLenOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cnmsg.Decode(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if diff := cmp.Diff(cnmsg.Message{}, got, msgOpts); diff != "" {
					t.Errorf("Decode() message on error not zero (-want +got):\n%s", diff)
				}
				return
			}
			if diff := cmp.Diff(tt.wantData, got.Data); diff != "" {
				t.Errorf("Decode() data mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDataPointsIntoInput(t *testing.T) {
	b := concat(nlmsg(16, cnmsg.NlmsgNoop, nil), datagram([]byte{1, 2, 3, 4, 5}), []byte{0, 0, 0, 0xaa})
	m, err := cnmsg.Decode(b)
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	if got, want := &m.Data[0], &b[16+36]; got != want {
		t.Errorf("&Data[0] = %p, want %p (byte 36 of the connector message)", got, want)
	}
	if got, want := cap(m.Data), len(m.Data); got != want {
		t.Errorf("cap(Data) = %d, want %d: appending must not overwrite the input", got, want)
	}
	b[16+36] = 42
	if got, want := m.Data[0], byte(42); got != want {
		t.Errorf("Data[0] after writing the input = %d, want %d: Data is a copy", got, want)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{cnmsg.ErrShortNlmsghdr, "short_nlmsghdr"},
		{cnmsg.ErrNlmsgLen, "bad_nlmsg_len"},
		{cnmsg.ErrNotConnector, "not_connector"},
		{cnmsg.ErrShortHeader, "short_cn_msg"},
		{cnmsg.ErrLenOverflow, "cn_len_overflow"},
		{cnmsg.ErrShortProcEvent, "short_proc_event"},
		{errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := cnmsg.Reason(tt.err); got != tt.want {
				t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestIDIsProc(t *testing.T) {
	tests := []struct {
		id   cnmsg.ID
		want bool
	}{
		{cnmsg.ID{Idx: 1, Val: 1}, true},
		{cnmsg.ID{Idx: 1, Val: 2}, false},
		{cnmsg.ID{Idx: 3, Val: 1}, false},
		{cnmsg.ID{}, false},
	}
	for _, tt := range tests {
		if got := tt.id.IsProc(); got != tt.want {
			t.Errorf("%+v.IsProc() = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestAppendMessage(t *testing.T) {
	h := cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 3, Ack: 41, Flags: 0}
	// What the doc's subscription example sends: PROC_CN_MCAST_LISTEN.
	got := cnmsg.AppendMessage([]byte("prefix"), 5, 1234, h, []byte{1, 0, 0, 0})
	body := cnBody(1, 1, 3, 41, 4, 0, []byte{1, 0, 0, 0})
	want := concat([]byte("prefix"), nlmsg(40, cnmsg.NlmsgDone, body))
	ne.PutUint16(want[6+6:], 0) // flags 0
	ne.PutUint32(want[6+8:], 5)
	ne.PutUint32(want[6+12:], 1234)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AppendMessage() mismatch (-want +got):\n%s", diff)
	}
}

func TestAppendMessageRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5, 40, 1000, cnmsg.MaxMsgSize - cnmsg.HeaderLen} {
		h := cnmsg.Header{ID: cnmsg.ID{Idx: 9, Val: 1}, Seq: uint32(n), Ack: 7, Flags: 0x8001}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i)
		}
		b := cnmsg.AppendMessage(nil, 11, 12, h, data)
		if len(b)%4 != 0 {
			t.Errorf("n=%d: len = %d, not NLMSG_ALIGNTO-aligned", n, len(b))
		}
		if len(b) > cnmsg.MaxDatagram {
			t.Errorf("n=%d: len = %d > MaxDatagram %d", n, len(b), cnmsg.MaxDatagram)
		}
		got, rest, err := cnmsg.Next(b)
		if err != nil {
			t.Fatalf("n=%d: Next() error = %v", n, err)
		}
		want := cnmsg.Message{
			Nl:    cnmsg.NlHeader{Len: uint32(36 + n), Type: cnmsg.NlmsgDone, Seq: 11, PID: 12},
			ID:    h.ID,
			Seq:   h.Seq,
			Ack:   h.Ack,
			Len:   uint16(n),
			Flags: h.Flags,
			Data:  data,
		}
		if diff := cmp.Diff(want, got, msgOpts); diff != "" {
			t.Errorf("n=%d: round trip mismatch (-want +got):\n%s", n, diff)
		}
		if len(rest) != 0 {
			t.Errorf("n=%d: rest = %d bytes, want 0", n, len(rest))
		}
	}
}

func TestAppendMessageTooLong(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("AppendMessage() with %d data bytes did not panic", cnmsg.MaxMsgSize-cnmsg.HeaderLen+1)
		}
	}()
	cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{}, make([]byte, cnmsg.MaxMsgSize-cnmsg.HeaderLen+1))
}

func TestAppendMessagePadsMessageNotBuffer(t *testing.T) {
	prefix := []byte("abc") // unaligned on purpose
	b := cnmsg.AppendMessage(prefix, 0, 0, cnmsg.Header{}, []byte{1, 2, 3, 4, 5})
	if got, want := len(b), len(prefix)+44; got != want {
		t.Fatalf("len = %d, want %d (3 prefix bytes, 41-byte message padded to 44)", got, want)
	}
	m, rest, err := cnmsg.Next(b[len(prefix):])
	if err != nil {
		t.Fatalf("Next() error = %v", err)
	}
	if diff := cmp.Diff([]byte{1, 2, 3, 4, 5}, m.Data); diff != "" {
		t.Errorf("data mismatch (-want +got):\n%s", diff)
	}
	if len(rest) != 0 {
		t.Errorf("rest = %d bytes, want 0", len(rest))
	}
}
