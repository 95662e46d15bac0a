package cnmsg_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// within reports whether sub lies inside b's bytes (not merely equal to some
// of them), comparing addresses.
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(b))
}

func addSeeds(f *testing.F, data bool) {
	for _, b := range realDatagrams(f) {
		if !data {
			f.Add(b)
			continue
		}
		m, err := cnmsg.Decode(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Data)
		f.Add(m.Data[:len(m.Data)-8]) // older kernels' exit: no parent fields
	}
}

func FuzzDecode(f *testing.F) {
	addSeeds(f, false)
	exec := readTestdata(f, "exec.bin")
	f.Add(append(append([]byte(nil), exec...), exec...))
	f.Add(append(nlmsg(16, cnmsg.NlmsgNoop, nil), exec...))
	f.Add(nlmsg(16, cnmsg.NlmsgOverrun, nil))
	f.Add(exec[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		in := b
		for i := 0; ; i++ {
			m, rest, err := cnmsg.Next(b)
			if err != nil {
				if rest != nil {
					t.Fatalf("Next() error %v with rest of %d bytes", err, len(rest))
				}
				if cnmsg.Reason(err) == "other" {
					t.Fatalf("Next() error %v has no Reason label", err)
				}
				return
			}
			if int(m.Len) != len(m.Data) {
				t.Fatalf("Len = %d, len(Data) = %d", m.Len, len(m.Data))
			}
			if cap(m.Data) != len(m.Data) {
				t.Fatalf("cap(Data) = %d, len(Data) = %d: appending would overwrite the input", cap(m.Data), len(m.Data))
			}
			if !within(in, m.Data) {
				t.Fatalf("Data (%d bytes) is not inside the %d-byte input", len(m.Data), len(in))
			}
			if int(m.Nl.Len) < cnmsg.NlmsgHdrLen+cnmsg.HeaderLen+len(m.Data) || int(m.Nl.Len) > len(b) {
				t.Fatalf("nlmsg_len %d out of range for %d data bytes in %d input bytes", m.Nl.Len, len(m.Data), len(b))
			}
			if !within(in, rest) || len(rest) >= len(b) {
				t.Fatalf("rest (%d bytes) is not a strict suffix of the input (%d bytes)", len(rest), len(b))
			}
			if i == 0 {
				if d, err := cnmsg.Decode(in); err != nil || !cmp.Equal(m, d) {
					t.Fatalf("Decode() = %+v, %v; want Next()'s %+v", d, err, m)
				}
			}
			// What decodes re-encodes to the same message.
			h := cnmsg.Header{ID: m.ID, Seq: m.Seq, Ack: m.Ack, Flags: m.Flags}
			re, err := cnmsg.Decode(cnmsg.AppendMessage(nil, m.Nl.Seq, m.Nl.PID, h, m.Data))
			if err != nil {
				t.Fatalf("Decode(AppendMessage()) error = %v", err)
			}
			m.Nl.Len, m.Nl.Type, m.Nl.Flags = re.Nl.Len, re.Nl.Type, re.Nl.Flags
			if diff := cmp.Diff(m, re); diff != "" {
				t.Fatalf("re-encoded message mismatch (-want +got):\n%s", diff)
			}
			_, _ = cnmsg.DecodeProc(m.Data)
			if len(rest) == 0 {
				return
			}
			b = rest
		}
	})
}

func FuzzDecodeProc(f *testing.F) {
	addSeeds(f, true)
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := cnmsg.DecodeProc(b)
		if err != nil {
			if !errors.Is(err, cnmsg.ErrShortProcEvent) {
				t.Fatalf("DecodeProc() error = %v, want only %v", err, cnmsg.ErrShortProcEvent)
			}
			if len(b) >= cnmsg.ProcEventLen {
				t.Fatalf("DecodeProc(%d bytes) error = %v: a full proc_event is never short", len(b), err)
			}
			return
		}
		if len(b) < 16 {
			t.Fatalf("DecodeProc(%d bytes) decoded without a full header", len(b))
		}
		if e.HasParent && e.What != cnmsg.ProcExit && e.What != cnmsg.ProcCoredump {
			t.Fatalf("HasParent set for what %v", e.What)
		}
		// A full proc_event of a known type re-encodes to the same event.
		if len(b) < cnmsg.ProcEventLen || e.What.String() == "unknown" || e.What == cnmsg.ProcNonzeroExit {
			return
		}
		got, err := cnmsg.DecodeProc(cnmsg.AppendProc(nil, e))
		if err != nil {
			t.Fatalf("DecodeProc(AppendProc()) error = %v", err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Fatalf("re-encoded event mismatch (-want +got):\n%s", diff)
		}
	})
}
