package procinfo

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

const (
	dockerID = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
	criID    = "9b4e6f1a2c3d4e5f60718293a4b5c6d7e8f9011223344556677889900aabbccd"
)

func TestReaderFixture(t *testing.T) {
	tests := []struct {
		name       string
		pid        uint32
		maxCmdline int
		want       Info
	}{
		{
			name: "systemd",
			pid:  1,
			want: Info{
				Comm: "systemd", Exe: "/usr/lib/systemd/systemd",
				Cmdline: []string{"/sbin/init", "splash"},
				Cgroup:  "/init.scope", StartTicks: 10,
			},
		},
		{
			name: "kernel thread has no exe or cmdline",
			pid:  2,
			want: Info{Comm: "kthreadd", Cgroup: "/", StartTicks: 20},
		},
		{
			name: "docker container on a hybrid cgroup system",
			pid:  4242,
			want: Info{
				Comm: "gunicorn", Exe: "/usr/local/bin/python3.12",
				Cmdline: []string{"/usr/local/bin/python3.12", "/usr/local/bin/gunicorn", "--bind",
					"0.0.0.0:8000", "--workers", "4", "app.wsgi:application"},
				PPID: 4201, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, StartTicks: 42420,
				Cgroup:      "/system.slice/docker-" + dockerID + ".scope",
				ContainerID: dockerID,
			},
		},
		{
			name: "kubernetes pod",
			pid:  5151,
			want: Info{
				Comm: "java", Exe: "/usr/lib/jvm/java-21-openjdk-amd64/bin/java",
				Cmdline: []string{"java", "-XX:+UseContainerSupport", "-XX:MaxRAMPercentage=75.0",
					"-Djava.security.egd=file:/dev/./urandom", "-jar", "/app/service.jar",
					"--spring.profiles.active=production"},
				PPID: 5140, UID: 65532, EUID: 65532, GID: 65532, EGID: 65532, StartTicks: 51510,
				PodUID: "7a1e5c3b-9d2f-4e8a-b6c1-0f3d2e1a9b8c",
				Cgroup: "/kubepods.slice/kubepods-burstable.slice/" +
					"kubepods-burstable-pod7a1e5c3b_9d2f_4e8a_b6c1_0f3d2e1a9b8c.slice/cri-containerd-" + criID + ".scope",
				ContainerID: criID,
			},
		},
		{
			name:       "cmdline truncated",
			pid:        5151,
			maxCmdline: 40,
			want: Info{
				Comm: "java", Exe: "/usr/lib/jvm/java-21-openjdk-amd64/bin/java",
				Cmdline:          []string{"java", "-XX:+UseContainerSupport", "-XX:MaxRAM"},
				CmdlineTruncated: true,
				PPID:             5140, UID: 65532, EUID: 65532, GID: 65532, EGID: 65532, StartTicks: 51510,
				PodUID: "7a1e5c3b-9d2f-4e8a-b6c1-0f3d2e1a9b8c",
				Cgroup: "/kubepods.slice/kubepods-burstable.slice/" +
					"kubepods-burstable-pod7a1e5c3b_9d2f_4e8a_b6c1_0f3d2e1a9b8c.slice/cri-containerd-" + criID + ".scope",
				ContainerID: criID,
			},
		},
		{
			name: "cmdline rewritten by setproctitle",
			pid:  6000,
			want: Info{
				Comm: "sshd", Exe: "/usr/sbin/sshd", Cmdline: []string{"sshd: alice [priv]"},
				PPID: 812, Cgroup: "/system.slice/ssh.service", StartTicks: 60000,
			},
		},
		{
			name: "setuid program: real uid, cgroup v1 only",
			pid:  7000,
			want: Info{
				Comm: "passwd", Exe: "/usr/bin/passwd", Cmdline: []string{"passwd"},
				PPID: 6001, UID: 1000, GID: 1000, EGID: 1000, StartTicks: 70000,
			},
		},
		{
			name: "gone during the read",
			pid:  8000,
			want: Info{Gone: true},
		},
		{
			name: "gone before the read",
			pid:  99999,
			want: Info{Gone: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{Root: "testdata/proc", MaxCmdline: tt.maxCmdline}
			got, err := r.Read(tt.pid)
			if err != nil {
				t.Fatalf("Read(%d): %v", tt.pid, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read(%d) mismatch (-want +got):\n%s", tt.pid, diff)
			}
		})
	}
}

// TestReaderReuse reads fixtures of different sizes in turn with one Reader,
// so a result that aliased the reused buffer would show.
func TestReaderReuse(t *testing.T) {
	r := &Reader{Root: "testdata/proc"}
	first, err := r.Read(4242)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Comm: first.Comm, Exe: first.Exe, Cmdline: append([]string(nil), first.Cmdline...),
		PPID: first.PPID, UID: first.UID, GID: first.GID, Cgroup: first.Cgroup, ContainerID: first.ContainerID,
		EUID: first.EUID, EGID: first.EGID, StartTicks: first.StartTicks,
	}
	for _, pid := range []uint32{1, 2, 5151, 6000, 7000} {
		if _, err := r.Read(pid); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("first Info changed by later reads (-want +got):\n%s", diff)
	}
}

// TestReaderLargeFiles checks that files bigger than the initial buffer are
// read whole: a cgroup file whose "0::" line comes after 8 KiB of v1 lines.
func TestReaderLargeFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cg strings.Builder
	for i := 100; cg.Len() < 8192; i++ {
		cg.WriteString(strconv.Itoa(i) + ":name=v1-" + strings.Repeat("x", 50) + ":/some/v1/path\n")
	}
	cg.WriteString("0::/machine.slice/libpod-" + dockerID + ".scope/container\n")
	args := []string{"/usr/bin/env", strings.Repeat("a", 6000), "b"}
	files := map[string]string{
		"comm":    "env\n",
		"status":  "Name:\tenv\nPPid:\t7\nUid:\t3\t3\t3\t3\nGid:\t4\t4\t4\t4\n",
		"cmdline": strings.Join(args, "\x00") + "\x00",
		"cgroup":  cg.String(),
		"stat":    "42 (env) S 7 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 100 1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reader{Root: root, MaxCmdline: 1 << 20}
	got, err := r.Read(42)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Comm: "env", Cmdline: args, PPID: 7, UID: 3, EUID: 3, GID: 4, EGID: 4, StartTicks: 99,
		Cgroup:      "/machine.slice/libpod-" + dockerID + ".scope/container",
		ContainerID: dockerID,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read mismatch (-want +got):\n%s", diff)
	}
}

func TestReaderError(t *testing.T) {
	root := t.TempDir()
	// A pid "directory" that is a file: open fails with ENOTDIR, which is
	// an error, not a process that has gone.
	if err := os.WriteFile(filepath.Join(root, "5"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Reader{Root: root}
	got, err := r.Read(5)
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("Read(5) = %+v, %v; want a *fs.PathError wrapping ENOTDIR", got, err)
	}
	if want := filepath.Join(root, "5"); pe.Path != want {
		t.Errorf("PathError.Path = %q, want %q", pe.Path, want)
	}
}

// ownCgroup returns the cgroup v2 path in /proc/self/cgroup, read here
// independently of the package's parser.
func ownCgroup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

func TestReadSelf(t *testing.T) {
	var r Reader
	got, err := r.Read(uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Comm:    strings.TrimSuffix(string(comm), "\n"),
		Exe:     exe,
		Cmdline: os.Args,
		PPID:    uint32(os.Getppid()),
		UID:     uint32(os.Getuid()),
		GID:     uint32(os.Getgid()),
		EUID:    uint32(os.Geteuid()),
		EGID:    uint32(os.Getegid()),
		Cwd:     mustGetwd(t),
		Cgroup:  ownCgroup(t),
	}
	want.ContainerID = ContainerID(want.Cgroup)
	want.StartTicks = got.StartTicks // checked against the clocks by proctable's tests
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read(self) mismatch (-want +got):\n%s", diff)
	}
}

// startSleep starts /bin/sleep 5 and arranges for it to be killed and reaped.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// readExec reads pid, waiting until it has exec'd its command: right after
// fork the child is still a copy of the test binary.
func readExec(t *testing.T, r *Reader, pid int, comm string) Info {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := r.Read(uint32(pid))
		if err != nil {
			t.Fatal(err)
		}
		// comm changes early in execve, the command line a little later.
		if got.Comm == comm && len(got.Cmdline) > 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadChild(t *testing.T) {
	cmd := startSleep(t)
	var r Reader
	got := readExec(t, &r, cmd.Process.Pid, "sleep")
	exe, err := filepath.EvalSymlinks("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Comm:    "sleep",
		Exe:     exe,
		Cmdline: []string{"/bin/sleep", "5"},
		PPID:    uint32(os.Getpid()),
		UID:     uint32(os.Getuid()),
		GID:     uint32(os.Getgid()),
		EUID:    uint32(os.Geteuid()),
		EGID:    uint32(os.Getegid()),
		Cwd:     mustGetwd(t),
		Cgroup:  ownCgroup(t),
	}
	want.ContainerID = ContainerID(want.Cgroup)
	want.StartTicks = got.StartTicks // checked against the clocks by proctable's tests
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read(child) mismatch (-want +got):\n%s", diff)
	}
}

// TestReadZombie reads a child that has exited but is not yet reaped, as the
// pipeline often will at an exit event: it still exists, without exe or
// cmdline.
func TestReadZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatalf("waitid: %v", err)
	}
	var r Reader
	got, err := r.Read(uint32(pid))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Comm:   "true",
		PPID:   uint32(os.Getpid()),
		UID:    uint32(os.Getuid()),
		GID:    uint32(os.Getgid()),
		EUID:   uint32(os.Geteuid()),
		EGID:   uint32(os.Getegid()),
		Cgroup: ownCgroup(t),
	}
	want.ContainerID = ContainerID(want.Cgroup)
	want.StartTicks = got.StartTicks
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read(zombie) mismatch (-want +got):\n%s", diff)
	}
}

func TestReadExited(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var r Reader
	got, err := r.Read(uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Gone {
		// The pid may, rarely, have been reused already.
		t.Errorf("Read(exited pid %d) = %+v, want Gone", cmd.Process.Pid, got)
	}
}

func TestReadKernelThread(t *testing.T) {
	comm, err := os.ReadFile("/proc/2/comm")
	if err != nil || string(comm) != "kthreadd\n" {
		t.Skip("pid 2 is not kthreadd: not in the initial pid namespace")
	}
	var r Reader
	got, err := r.Read(2)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Comm: "kthreadd", Cgroup: got.Cgroup, ContainerID: got.ContainerID, Cwd: "/", StartTicks: got.StartTicks}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read(2) mismatch (-want +got):\n%s", diff)
	}
}

// cgroup2Mount returns where cgroup v2 is mounted, and the mount's root
// within the hierarchy, from /proc/self/mountinfo. On a hybrid system that is
// /sys/fs/cgroup/unified rather than /sys/fs/cgroup.
func cgroup2Mount(t *testing.T) (dir, root string, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// 40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
		fields := strings.Fields(s.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], fields[3], true
			}
		}
	}
	return "", "", false
}

// TestReadCgroup moves a child into a cgroup made for it, named like a docker
// container's scope, and reads it back.
func TestReadCgroup(t *testing.T) {
	cntest.NeedRoot(t, "creates a cgroup")
	mnt, mntRoot, ok := cgroup2Mount(t)
	if !ok {
		t.Skip("cgroup v2 is not mounted")
	}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	parent := "procinfo-test-" + strconv.Itoa(os.Getpid())
	leaf := "docker-" + id + ".scope"
	dir := filepath.Join(mnt, parent, leaf)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 at %s is not writable: %v", mnt, err)
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, filepath.Join(mnt, parent)} {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup: %v", err)
			}
		}
	})
	cmd := startSleep(t)
	// Cleanups run last-registered first: the child is killed and reaped
	// (startSleep) before its cgroup is removed.
	procs := filepath.Join(dir, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move child into %s: %v", dir, err)
	}
	var r Reader
	got := readExec(t, &r, cmd.Process.Pid, "sleep")
	want := path.Join(mntRoot, parent, leaf)
	if got.Cgroup != want {
		t.Errorf("Cgroup = %q, want %q", got.Cgroup, want)
	}
	if got.ContainerID != id {
		t.Errorf("ContainerID = %q, want %q", got.ContainerID, id)
	}
}

func TestReadAllocs(t *testing.T) {
	var r Reader
	pid := uint32(os.Getpid())
	if _, err := r.Read(pid); err != nil {
		t.Fatal(err)
	}
	// Comm, Exe, the cmdline string and slice, Cgroup, Cwd.
	const want = 6
	if got := testing.AllocsPerRun(100, func() { _, _ = r.Read(pid) }); got > want {
		t.Errorf("Read allocates %v times, want at most %d", got, want)
	}
	// Exe, Cwd, Comm, the cmdline string and slice, Cgroup.
	if got := testing.AllocsPerRun(100, func() { _, _ = r.ReadExec(pid, nil) }); got > 6 {
		t.Errorf("ReadExec allocates %v times, want at most 6", got)
	}
	// Given what it read before, only the cmdline string and slice.
	like, err := r.ReadExec(pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = r.ReadExec(pid, &like) }); got > 2 {
		t.Errorf("ReadExec(pid, &like) allocates %v times, want at most 2", got)
	}
	gone := &Reader{Root: "testdata/proc"}
	if got := testing.AllocsPerRun(100, func() { _, _ = gone.Read(99999) }); got != 0 {
		t.Errorf("Read of a gone pid allocates %v times, want 0", got)
	}
}

func BenchmarkRead(b *testing.B) {
	var r Reader
	pid := uint32(os.Getpid())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadGone(b *testing.B) {
	var r Reader
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(1 << 30); err != nil {
			b.Fatal(err)
		}
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
