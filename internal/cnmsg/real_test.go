package cnmsg_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// The datagrams in testdata/*.bin were received from this project's target
// kernel (6.18) on a NETLINK_CONNECTOR socket bound to group 1 after a
// PROC_CN_MCAST_LISTEN with ack 41, while the capturing process ran children
// that forked, exec'd, called setsid, wrote /proc/self/comm ("cnfuzz"),
// switched to uid/gid 65534, were ptrace-attached and detached, and exited
// normally, with status 1, by SIGSEGV with and without a core, and by
// SIGKILL. Each file is one whole datagram as recvfrom returned it.

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func realDatagrams(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no testdata/*.bin")
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		out[filepath.Base(n)] = readTestdata(t, filepath.Base(n))
	}
	return out
}

func TestRealDatagrams(t *testing.T) {
	tests := []struct {
		file  string
		what  cnmsg.What
		check func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent)
	}{
		{"ack.bin", cnmsg.ProcNone, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			if m.Ack != 42 || e.Err != 0 {
				t.Errorf("ack = %d, err = %d; want 42 (our ack + 1), 0", m.Ack, e.Err)
			}
		}},
		{"fork.bin", cnmsg.ProcFork, func(t *testing.T, _ cnmsg.Message, e cnmsg.ProcEvent) {
			if e.ParentTGID == 0 || e.ChildPID == 0 || e.ChildTGID == 0 || e.ChildPID == e.ParentPID {
				t.Errorf("implausible fork: %+v", e)
			}
		}},
		{"exec.bin", cnmsg.ProcExec, pidCheck},
		{"uid.bin", cnmsg.ProcUID, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			pidCheck(t, m, e)
			if e.RUID != 65534 || e.EUID != 65534 {
				t.Errorf("ruid, euid = %d, %d; want 65534, 65534", e.RUID, e.EUID)
			}
		}},
		{"gid.bin", cnmsg.ProcGID, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			pidCheck(t, m, e)
			if e.RGID != 65534 || e.EGID != 65534 {
				t.Errorf("rgid, egid = %d, %d; want 65534, 65534", e.RGID, e.EGID)
			}
		}},
		{"sid.bin", cnmsg.ProcSID, pidCheck},
		{"ptrace_attach.bin", cnmsg.ProcPtrace, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			pidCheck(t, m, e)
			if e.TracerPID == 0 || e.TracerTGID == 0 {
				t.Errorf("attach with tracer %d/%d, want non-zero", e.TracerPID, e.TracerTGID)
			}
		}},
		{"ptrace_detach.bin", cnmsg.ProcPtrace, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			pidCheck(t, m, e)
			if e.TracerPID != 0 || e.TracerTGID != 0 {
				t.Errorf("detach with tracer %d/%d, want 0/0", e.TracerPID, e.TracerTGID)
			}
		}},
		{"comm.bin", cnmsg.ProcComm, func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
			pidCheck(t, m, e)
			if got, want := string(e.CommBytes()), "cnfuzz"; got != want {
				t.Errorf("comm = %q, want %q", got, want)
			}
		}},
		{"coredump.bin", cnmsg.ProcCoredump, parentCheck},
		{"exit.bin", cnmsg.ProcExit, exitCheck(0)},
		{"exit_nonzero.bin", cnmsg.ProcExit, exitCheck(256)},         // exit(1)
		{"exit_segv.bin", cnmsg.ProcExit, exitCheck(11)},             // SIGSEGV, no core
		{"exit_segv_core.bin", cnmsg.ProcExit, exitCheck(0x80 | 11)}, // SIGSEGV, core dumped
		{"exit_sigkill.bin", cnmsg.ProcExit, exitCheck(9)},           // SIGKILL
	}
	files := realDatagrams(t)
	var covered, all []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
		t.Run(tt.file, func(t *testing.T) {
			b, ok := files[tt.file]
			if !ok {
				t.Fatalf("testdata/%s missing", tt.file)
			}
			m, err := cnmsg.Decode(b)
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			wantNl := cnmsg.NlHeader{Len: uint32(len(b)), Type: cnmsg.NlmsgDone, Seq: m.Nl.Seq}
			if diff := cmp.Diff(wantNl, m.Nl); diff != "" {
				t.Errorf("nlmsghdr mismatch (-want +got):\n%s", diff)
			}
			if !m.ID.IsProc() || m.Len != cnmsg.ProcEventLen || m.Flags != 0 {
				t.Errorf("id %+v len %d flags %d; want 1.1, %d, 0", m.ID, m.Len, m.Flags, cnmsg.ProcEventLen)
			}
			e, err := cnmsg.DecodeProc(m.Data)
			if err != nil {
				t.Fatalf("DecodeProc() error = %v", err)
			}
			if e.What != tt.what {
				t.Errorf("what = %v, want %v", e.What, tt.what)
			}
			if e.TimestampNs == 0 || e.CPU > 4096 {
				t.Errorf("timestamp %d cpu %d, want non-zero and a plausible cpu", e.TimestampNs, e.CPU)
			}
			tt.check(t, m, e)
			// The kernel's 40 bytes re-encode exactly (unused union bytes are zero).
			if diff := cmp.Diff(m.Data, cnmsg.AppendProc(nil, e)); diff != "" {
				t.Errorf("AppendProc(DecodeProc()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for f := range files {
		all = append(all, f)
	}
	sort.Strings(all)
	sort.Strings(covered)
	if diff := cmp.Diff(all, covered); diff != "" {
		t.Errorf("testdata files without a test case (-files +cases):\n%s", diff)
	}
}

func pidCheck(t *testing.T, _ cnmsg.Message, e cnmsg.ProcEvent) {
	t.Helper()
	if e.PID == 0 || e.TGID == 0 {
		t.Errorf("pid %d tgid %d, want non-zero", e.PID, e.TGID)
	}
}

func parentCheck(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
	t.Helper()
	pidCheck(t, m, e)
	if !e.HasParent || e.ParentPID == 0 || e.ParentTGID == 0 {
		t.Errorf("parent %d/%d HasParent %v, want non-zero, true", e.ParentPID, e.ParentTGID, e.HasParent)
	}
}

func exitCheck(status uint32) func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
	return func(t *testing.T, m cnmsg.Message, e cnmsg.ProcEvent) {
		t.Helper()
		parentCheck(t, m, e)
		if e.ExitCode != status || e.ExitSignal != 17 {
			t.Errorf("exit_code %d exit_signal %d, want %d, 17 (SIGCHLD)", e.ExitCode, e.ExitSignal, status)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	good := readTestdata(t, "exec.bin")
	bad := []byte{1, 2, 3}
	short := append([]byte(nil), good...)
	ne.PutUint16(short[32:], 8) // cn_msg.len 8: too short for an exec event
	var sink uint32
	got := testing.AllocsPerRun(1000, func() {
		for _, b := range [][]byte{good, bad, short} {
			m, err := cnmsg.Decode(b)
			if err != nil {
				sink += uint32(len(cnmsg.Reason(err)))
				continue
			}
			e, err := cnmsg.DecodeProc(m.Data)
			sink += e.PID + uint32(len(cnmsg.Reason(err)))
		}
	})
	if got != 0 {
		t.Errorf("Decode + DecodeProc allocate %v times per run, want 0", got)
	}
	_ = sink
}

func BenchmarkDecode(b *testing.B) {
	dg := readTestdata(b, "exec.bin")
	b.ReportAllocs()
	b.SetBytes(int64(len(dg)))
	var sink uint32
	for b.Loop() {
		m, err := cnmsg.Decode(dg)
		if err != nil {
			b.Fatal(err)
		}
		e, err := cnmsg.DecodeProc(m.Data)
		if err != nil {
			b.Fatal(err)
		}
		sink += e.PID
	}
	_ = sink
}
