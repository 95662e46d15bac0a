package cnmsg_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// field is one u32 of a proc_event at its offset from the start of the
// struct, as KERNEL-FACTS.md lists it.
type field struct {
	off int
	v   uint32
}

// procLayout writes a struct proc_event by hand, independent of AppendProc:
// what@0 cpu@4 timestamp_ns@8, then the given union fields. n is the payload
// length (40 for current kernels).
func procLayout(n int, what, cpu uint32, ts uint64, fields ...field) []byte {
	b := make([]byte, n)
	ne.PutUint32(b[0:], what)
	ne.PutUint32(b[4:], cpu)
	ne.PutUint64(b[8:], ts)
	for _, f := range fields {
		ne.PutUint32(b[f.off:], f.v)
	}
	return b
}

func commLayout(ts uint64, pid, tgid uint32, comm string) []byte {
	b := procLayout(40, 0x200, 1, ts, field{16, pid}, field{20, tgid})
	copy(b[24:40], comm)
	return b
}

func comm(s string) (c [16]byte) {
	copy(c[:], s)
	return c
}

const ts = 0x0123456789abcdef

func TestDecodeProc(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want cnmsg.ProcEvent
	}{
		{
			name: "ack",
			in:   procLayout(40, 0x0, 1, ts, field{16, 0}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcNone, CPU: 1, TimestampNs: ts},
		},
		{
			name: "ack with error",
			in:   procLayout(40, 0x0, 0, ts, field{16, 22}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcNone, TimestampNs: ts, Err: 22},
		},
		{
			name: "fork",
			in:   procLayout(40, 0x1, 1, ts, field{16, 100}, field{20, 101}, field{24, 200}, field{28, 201}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcFork, CPU: 1, TimestampNs: ts,
				ParentPID: 100, ParentTGID: 101, ChildPID: 200, ChildTGID: 201},
		},
		{
			name: "exec",
			in:   procLayout(40, 0x2, 1, ts, field{16, 300}, field{20, 301}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301},
		},
		{
			name: "uid",
			in:   procLayout(40, 0x4, 1, ts, field{16, 300}, field{20, 301}, field{24, 1000}, field{28, 0}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcUID, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301, RUID: 1000},
		},
		{
			name: "gid",
			in:   procLayout(40, 0x40, 1, ts, field{16, 300}, field{20, 301}, field{24, 5}, field{28, 6}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcGID, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301, RGID: 5, EGID: 6},
		},
		{
			name: "sid",
			in:   procLayout(40, 0x80, 1, ts, field{16, 300}, field{20, 301}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcSID, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301},
		},
		{
			name: "ptrace attach",
			in:   procLayout(40, 0x100, 1, ts, field{16, 300}, field{20, 301}, field{24, 400}, field{28, 401}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcPtrace, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301,
				TracerPID: 400, TracerTGID: 401},
		},
		{
			name: "ptrace detach",
			in:   procLayout(40, 0x100, 1, ts, field{16, 300}, field{20, 301}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcPtrace, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301},
		},
		{
			name: "comm",
			in:   commLayout(ts, 300, 301, "worker"),
			want: cnmsg.ProcEvent{What: cnmsg.ProcComm, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301, Comm: comm("worker")},
		},
		{
			name: "comm 16 bytes without NUL",
			in:   commLayout(ts, 300, 301, "0123456789abcdef"),
			want: cnmsg.ProcEvent{What: cnmsg.ProcComm, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301,
				Comm: comm("0123456789abcdef")},
		},
		{
			name: "coredump",
			in:   procLayout(40, 0x40000000, 1, ts, field{16, 300}, field{20, 301}, field{24, 100}, field{28, 101}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcCoredump, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301,
				ParentPID: 100, ParentTGID: 101, HasParent: true},
		},
		{
			name: "coredump without parent (older kernels)",
			in:   procLayout(24, 0x40000000, 1, ts, field{16, 300}, field{20, 301}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcCoredump, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301},
		},
		{
			name: "exit",
			in: procLayout(40, 0x80000000, 1, ts, field{16, 300}, field{20, 301}, field{24, 256}, field{28, 17},
				field{32, 100}, field{36, 101}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcExit, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301,
				ExitCode: 256, ExitSignal: 17, ParentPID: 100, ParentTGID: 101, HasParent: true},
		},
		{
			name: "exit without parent (older kernels)",
			in:   procLayout(32, 0x80000000, 1, ts, field{16, 300}, field{20, 301}, field{24, 11}, field{28, 17}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcExit, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301,
				ExitCode: 11, ExitSignal: 17},
		},
		{
			name: "exit with half a parent",
			in:   procLayout(36, 0x80000000, 1, ts, field{16, 300}, field{20, 301}, field{24, 0}, field{28, 17}, field{32, 100}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcExit, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301, ExitSignal: 17},
		},
		{
			name: "unknown what",
			in:   procLayout(40, 0x400, 1, ts, field{16, 300}, field{20, 301}),
			want: cnmsg.ProcEvent{What: 0x400, CPU: 1, TimestampNs: ts},
		},
		{
			name: "unknown what, header only",
			in:   procLayout(16, 0x800, 1, ts),
			want: cnmsg.ProcEvent{What: 0x800, CPU: 1, TimestampNs: ts},
		},
		{
			name: "nonzero_exit is not an event",
			in:   procLayout(40, 0x20000000, 1, ts, field{16, 300}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcNonzeroExit, CPU: 1, TimestampNs: ts},
		},
		{
			name: "longer payload than today's struct",
			in:   procLayout(48, 0x2, 1, ts, field{16, 300}, field{20, 301}, field{40, 0xffffffff}),
			want: cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: 1, TimestampNs: ts, PID: 300, TGID: 301},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cnmsg.DecodeProc(tt.in)
			if err != nil {
				t.Fatalf("DecodeProc() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeProc() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// minLens is the shortest payload each type decodes from: proc_event's
// 16-byte header plus the union fields the type needs (KERNEL-FACTS.md).
var minLens = []struct {
	what cnmsg.What
	min  int
}{
	{cnmsg.ProcNone, 20},
	{cnmsg.ProcFork, 32},
	{cnmsg.ProcExec, 24},
	{cnmsg.ProcUID, 32},
	{cnmsg.ProcGID, 32},
	{cnmsg.ProcSID, 24},
	{cnmsg.ProcPtrace, 32},
	{cnmsg.ProcComm, 40},
	{cnmsg.ProcCoredump, 24},
	{cnmsg.ProcExit, 32},
	{0x400, 16}, // unknown: header only
}

func TestDecodeProcShort(t *testing.T) {
	for _, tt := range minLens {
		t.Run(tt.what.String()+fmt.Sprintf("_%#x", uint32(tt.what)), func(t *testing.T) {
			full := procLayout(40, uint32(tt.what), 3, ts,
				field{16, 1}, field{20, 2}, field{24, 3}, field{28, 4}, field{32, 5}, field{36, 6})
			for n := 0; n < tt.min; n++ {
				got, err := cnmsg.DecodeProc(full[:n])
				if !errors.Is(err, cnmsg.ErrShortProcEvent) {
					t.Errorf("DecodeProc(%d bytes) error = %v, want %v", n, err, cnmsg.ErrShortProcEvent)
				}
				var want cnmsg.ProcEvent
				if n >= 16 { // the header is reported even when the union is short
					want = cnmsg.ProcEvent{What: tt.what, CPU: 3, TimestampNs: ts}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("DecodeProc(%d bytes) mismatch (-want +got):\n%s", n, diff)
				}
			}
			for n := tt.min; n <= 40; n++ {
				if _, err := cnmsg.DecodeProc(full[:n]); err != nil {
					t.Errorf("DecodeProc(%d bytes) error = %v, want nil", n, err)
				}
			}
		})
	}
}

// events is one event of every type, with every field its type carries set.
var events = []cnmsg.ProcEvent{
	{What: cnmsg.ProcNone, CPU: 1, TimestampNs: ts, Err: 1},
	{What: cnmsg.ProcFork, CPU: 1, TimestampNs: ts, ParentPID: 1, ParentTGID: 2, ChildPID: 3, ChildTGID: 4},
	{What: cnmsg.ProcExec, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6},
	{What: cnmsg.ProcUID, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, RUID: 7, EUID: 8},
	{What: cnmsg.ProcGID, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, RGID: 7, EGID: 8},
	{What: cnmsg.ProcSID, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6},
	{What: cnmsg.ProcPtrace, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, TracerPID: 9, TracerTGID: 10},
	{What: cnmsg.ProcComm, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, Comm: comm("kworker/u8:0")},
	{What: cnmsg.ProcCoredump, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, ParentPID: 1, ParentTGID: 2, HasParent: true},
	{What: cnmsg.ProcExit, CPU: 1, TimestampNs: ts, PID: 5, TGID: 6, ExitCode: 139, ExitSignal: 17,
		ParentPID: 1, ParentTGID: 2, HasParent: true},
}

func TestAppendProcLayout(t *testing.T) {
	// The hand-written layouts of the events above.
	want := map[cnmsg.What][]byte{
		cnmsg.ProcNone:     procLayout(40, 0x0, 1, ts, field{16, 1}),
		cnmsg.ProcFork:     procLayout(40, 0x1, 1, ts, field{16, 1}, field{20, 2}, field{24, 3}, field{28, 4}),
		cnmsg.ProcExec:     procLayout(40, 0x2, 1, ts, field{16, 5}, field{20, 6}),
		cnmsg.ProcUID:      procLayout(40, 0x4, 1, ts, field{16, 5}, field{20, 6}, field{24, 7}, field{28, 8}),
		cnmsg.ProcGID:      procLayout(40, 0x40, 1, ts, field{16, 5}, field{20, 6}, field{24, 7}, field{28, 8}),
		cnmsg.ProcSID:      procLayout(40, 0x80, 1, ts, field{16, 5}, field{20, 6}),
		cnmsg.ProcPtrace:   procLayout(40, 0x100, 1, ts, field{16, 5}, field{20, 6}, field{24, 9}, field{28, 10}),
		cnmsg.ProcComm:     commLayout(ts, 5, 6, "kworker/u8:0"),
		cnmsg.ProcCoredump: procLayout(40, 0x40000000, 1, ts, field{16, 5}, field{20, 6}, field{24, 1}, field{28, 2}),
		cnmsg.ProcExit: procLayout(40, 0x80000000, 1, ts, field{16, 5}, field{20, 6}, field{24, 139}, field{28, 17},
			field{32, 1}, field{36, 2}),
	}
	for _, e := range events {
		t.Run(e.What.String(), func(t *testing.T) {
			got := cnmsg.AppendProc([]byte{0xaa}, e)
			if diff := cmp.Diff(append([]byte{0xaa}, want[e.What]...), got); diff != "" {
				t.Errorf("AppendProc() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendProcRoundTrip(t *testing.T) {
	for _, e := range events {
		t.Run(e.What.String(), func(t *testing.T) {
			b := cnmsg.AppendProc(nil, e)
			if got, want := len(b), cnmsg.ProcEventLen; got != want {
				t.Errorf("len(AppendProc()) = %d, want %d", got, want)
			}
			got, err := cnmsg.DecodeProc(b)
			if err != nil {
				t.Fatalf("DecodeProc() error = %v", err)
			}
			if diff := cmp.Diff(e, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcInMessageRoundTrip(t *testing.T) {
	for _, e := range events {
		t.Run(e.What.String(), func(t *testing.T) {
			h := cnmsg.Header{ID: cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}, Seq: 12}
			b := cnmsg.AppendMessage(nil, 0, 0, h, cnmsg.AppendProc(nil, e))
			m, err := cnmsg.Decode(b)
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if !m.ID.IsProc() {
				t.Errorf("ID = %+v, want the process connector's", m.ID)
			}
			got, err := cnmsg.DecodeProc(m.Data)
			if err != nil {
				t.Fatalf("DecodeProc() error = %v", err)
			}
			if diff := cmp.Diff(e, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendMcastOp(t *testing.T) {
	u32s := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = ne.AppendUint32(b, v)
		}
		return b
	}
	tests := []struct {
		name string
		op   uint32
		mask cnmsg.What
		want []byte
	}{
		{"listen all", cnmsg.McastListen, cnmsg.ProcAll, u32s(1)},
		{"ignore all", cnmsg.McastIgnore, cnmsg.ProcAll, u32s(2)},
		// PROC_EVENT_ALL proper: the kernel ignores the nonzero-exit bit
		// when every type is set, so this too is "all".
		{"listen PROC_EVENT_ALL", cnmsg.McastListen, cnmsg.ProcAll | cnmsg.ProcNonzeroExit, u32s(1)},
		{"listen exec and exit", cnmsg.McastListen, cnmsg.ProcExec | cnmsg.ProcExit, u32s(1, 0x80000002)},
		{"listen nonzero exits", cnmsg.McastListen, cnmsg.ProcExit | cnmsg.ProcNonzeroExit, u32s(1, 0xa0000000)},
		{"ignore fork", cnmsg.McastIgnore, cnmsg.ProcFork, u32s(2, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cnmsg.AppendMcastOp([]byte{9}, tt.op, tt.mask)
			if diff := cmp.Diff(append([]byte{9}, tt.want...), got); diff != "" {
				t.Errorf("AppendMcastOp(%d, %#x) mismatch (-want +got):\n%s", tt.op, uint32(tt.mask), diff)
			}
		})
	}
}

func TestWhatString(t *testing.T) {
	tests := []struct {
		w    cnmsg.What
		want string
	}{
		{cnmsg.ProcNone, "none"},
		{cnmsg.ProcFork, "fork"},
		{cnmsg.ProcExec, "exec"},
		{cnmsg.ProcUID, "uid"},
		{cnmsg.ProcGID, "gid"},
		{cnmsg.ProcSID, "sid"},
		{cnmsg.ProcPtrace, "ptrace"},
		{cnmsg.ProcComm, "comm"},
		{cnmsg.ProcCoredump, "coredump"},
		{cnmsg.ProcExit, "exit"},
		{cnmsg.ProcNonzeroExit, "nonzero_exit"},
	}
	for _, tt := range tests {
		if got := tt.w.String(); got != tt.want {
			t.Errorf("What(%#x).String() = %q, want %q", uint32(tt.w), got, tt.want)
		}
		got, ok := cnmsg.ParseWhat(tt.want)
		if !ok || got != tt.w {
			t.Errorf("ParseWhat(%q) = %#x, %v; want %#x, true", tt.want, uint32(got), ok, uint32(tt.w))
		}
	}
	if got := cnmsg.What(0x400).String(); got != "unknown" {
		t.Errorf("What(0x400).String() = %q, want %q", got, "unknown")
	}
	if got, ok := cnmsg.ParseWhat("unknown"); ok {
		t.Errorf("ParseWhat(%q) = %#x, true; want false", "unknown", uint32(got))
	}
}

func TestCommBytes(t *testing.T) {
	tests := []struct {
		comm [16]byte
		want string
	}{
		{comm("bash"), "bash"},
		{comm(""), ""},
		{comm("0123456789abcdef"), "0123456789abcdef"},
		{[16]byte{'a', 0, 'b'}, "a"},
	}
	for _, tt := range tests {
		e := cnmsg.ProcEvent{Comm: tt.comm}
		if got := string(e.CommBytes()); got != tt.want {
			t.Errorf("CommBytes() of %q = %q, want %q", tt.comm, got, tt.want)
		}
	}
}
