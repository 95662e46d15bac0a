//go:build linux

package listener

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// joinChild is the test binary run as uid 65534 without capabilities: it
// joins group 1 on a plain socket (the ground truth, no probe code), then
// runs ProbeJoin, and prints both.
func joinChild() int {
	truth := "allowed"
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, Family)
	if err != nil {
		fmt.Println("socket:", err)
		return 1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, ProcGroup); errors.Is(err, unix.EPERM) {
		truth = "refused"
	} else if err != nil {
		fmt.Println("join:", err)
		return 1
	}
	unix.Close(fd)
	r := ProbeJoin()
	fmt.Printf("%s %v %s %v\n", truth, r.CapNetAdmin, r.Unprivileged, r.Err)
	return 0
}

// unprivilegedJoin runs joinChild as uid 65534 with no capability at all
// (setpriv, as the reproduction did) and returns what the kernel
// answered it, and what ProbeJoin said there.
func unprivilegedJoin(t *testing.T) (truth, probed string) {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("needs setpriv (util-linux): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The go test build directory is root's (0700): copy the binary
	// where uid 65534 can run it.
	dir, err := os.MkdirTemp("", "cnbridged-join-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "listener.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", bin)
	cmd.Env = append(os.Environ(), "CNBRIDGED_TEST_JOIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv … joinChild: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("joinChild printed %q", out)
	}
	return f[0], strings.Join(f[1:3], " ")
}

// TestProbeJoin compares ProbeJoin, run as root (which holds
// CAP_NET_ADMIN and must shed it on the probe's thread) and as uid 65534
// without capabilities, with what the kernel answers an unprivileged
// process that joins group 1. It asserts no kernel's behaviour: it holds
// on kernels that let anyone join and on those that need CAP_NET_ADMIN.
func TestProbeJoin(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	truth, probed := unprivilegedJoin(t)
	t.Logf("this kernel %s an unprivileged join of group 1", truth)
	if want := "false " + truth; probed != want {
		t.Errorf("ProbeJoin as uid 65534 without capabilities: got %q, want %q", probed, want)
	}
	r := ProbeJoin()
	if r.Err != nil || !r.CapNetAdmin || r.Unprivileged.String() != truth {
		t.Errorf("ProbeJoin as root: got %+v, want CapNetAdmin and Unprivileged %s", r, truth)
	}
	if !r.CanJoin() {
		t.Errorf("CanJoin() false as root")
	}
	// The probe's thread shed the capability, not the process: a socket
	// opened now still joins.
	l, err := New(Config{Groups: []int{ProcGroup}}, zapNop())
	if err != nil {
		t.Fatalf("after ProbeJoin, joining group 1 as root: %v", err)
	}
	l.Close()
}
