package procinfo

import (
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// allow returns a more func for Capture that says yes n times.
func allow(n int) func() bool {
	return func() bool {
		n--
		return n >= 0
	}
}

// TestCaptureFixture: Capture reads the fields in the order a process
// loses them (cmdline, exe, cwd, cgroup, comm) and stops where more says
// no, reporting exactly the fields it settled; a process that goes during
// the reads keeps what was read before.
func TestCaptureFixture(t *testing.T) {
	full, err := (&Reader{Root: "testdata/proc"}).ReadExec(4242, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pid      uint32
		files    int // how many files more allows
		want     Info
		wantGot  Fields
		wantMore int // how many times more was asked
	}{
		{name: "no budget", pid: 4242, files: 0, wantGot: 0, wantMore: 1},
		{name: "cmdline first", pid: 4242, files: 1, want: Info{Cmdline: full.Cmdline}, wantGot: FieldCmdline, wantMore: 2},
		{name: "then exe", pid: 4242, files: 2, want: Info{Cmdline: full.Cmdline, Exe: full.Exe},
			wantGot: FieldCmdline | FieldExe, wantMore: 3},
		{name: "then cwd (none in the fixture)", pid: 4242, files: 3, want: Info{Cmdline: full.Cmdline, Exe: full.Exe},
			wantGot: FieldCmdline | FieldExe | FieldCwd, wantMore: 4},
		{name: "then cgroup", pid: 4242, files: 4,
			want:    Info{Cmdline: full.Cmdline, Exe: full.Exe, Cgroup: full.Cgroup, ContainerID: full.ContainerID},
			wantGot: ExecFields &^ FieldComm, wantMore: 5},
		{name: "everything", pid: 4242, files: 5, want: full, wantGot: ExecFields, wantMore: 5},
		{name: "gone during the reads keeps what was read", pid: 8000, files: 5,
			want: Info{Cmdline: []string{"sh", "-c", "sleep 100"}, Exe: "/usr/bin/dash",
				Cgroup: "/user.slice/user-1000.slice/session-3.scope", Gone: true},
			wantGot: ExecFields &^ FieldComm, wantMore: 5},
		{name: "gone before the reads", pid: 99999, files: 5, want: Info{Gone: true}, wantGot: 0, wantMore: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{Root: "testdata/proc"}
			asked := 0
			n := tt.files
			more := func() bool { asked++; n--; return n >= 0 }
			got, fields, err := r.Capture(tt.pid, more)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Capture(%d) mismatch (-want +got):\n%s", tt.pid, diff)
			}
			if fields != tt.wantGot {
				t.Errorf("got fields %v, want %v", fields.Names(), tt.wantGot.Names())
			}
			if asked != tt.wantMore {
				t.Errorf("more asked %d times, want %d", asked, tt.wantMore)
			}
		})
	}
}

// TestCaptureLive: a live process captured in full is what ReadExec says.
func TestCaptureLive(t *testing.T) {
	cmd := startSleep(t)
	var r Reader
	readExec(t, &r, cmd.Process.Pid, "sleep") // past its exec
	want, err := r.ReadExec(uint32(cmd.Process.Pid), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, fields, err := r.Capture(uint32(cmd.Process.Pid), allow(5))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Capture mismatch with ReadExec (-ReadExec +Capture):\n%s", diff)
	}
	if fields != ExecFields {
		t.Errorf("fields %v, want all", fields.Names())
	}
}

// TestCaptureZombie: a process that has exited but is not reaped has no
// command line, exe or cwd any more; Capture settles every field, keeps
// comm and cgroup, and does not call it gone (the files after the first
// tell a zombie from a gone process).
func TestCaptureZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatalf("waitid: %v", err)
	}
	var r Reader
	got, fields, err := r.Capture(uint32(cmd.Process.Pid), allow(5))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Comm: "true", Cgroup: ownCgroup(t)}
	want.ContainerID = ContainerID(want.Cgroup)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Capture(zombie) mismatch (-want +got):\n%s", diff)
	}
	if fields != ExecFields {
		t.Errorf("fields %v, want all", fields.Names())
	}
}

func TestFieldsNames(t *testing.T) {
	if got, want := ExecFields.Names(), []string{"cmdline", "exe", "cwd", "cgroup", "comm"}; !cmp.Equal(got, want) {
		t.Errorf("ExecFields.Names() = %v, want %v", got, want)
	}
	if got := (FieldComm | FieldExe).Names(); !cmp.Equal(got, []string{"exe", "comm"}) {
		t.Errorf("Names() = %v, want [exe comm]", got)
	}
	if got := Fields(0).Names(); got != nil {
		t.Errorf("Names() of none = %v, want nil", got)
	}
}
