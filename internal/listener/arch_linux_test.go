//go:build linux

package listener

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestMmsghdrSize: the receive path's message headers have the kernel's
// struct mmsghdr size on this GOARCH (32 bytes on 386 and arm, 64 on
// amd64 and arm64). A hand-written struct with 4 bytes of padding was 36
// bytes on 386, so recvmmsg filled the second header into the first one's
// tail. Run under GOARCH=386 by TestReceive386.
func TestMmsghdrSize(t *testing.T) {
	var l Listener
	l.allocBuffers(2)
	got := uintptr(unsafe.Pointer(&l.hdrs[1])) - uintptr(unsafe.Pointer(&l.hdrs[0]))
	if got != unix.SizeofMmsghdr {
		t.Fatalf("GOARCH=%s: receive header stride got %d bytes, want %d (the kernel's struct mmsghdr)", runtime.GOARCH, got, unix.SizeofMmsghdr)
	}
	t.Logf("GOARCH=%s: struct mmsghdr is %d bytes", runtime.GOARCH, got)
}

// TestReceive386 builds this package's tests for GOARCH=386 and runs the
// header size test and the batched receive test in that binary: a 32-bit
// process on this kernel (compat syscalls), receiving many datagrams per
// recvmmsg call with the sender's port id.
func TestReceive386(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	if runtime.GOARCH != "amd64" {
		t.Skipf("builds a 386 binary and runs it under the amd64 kernel's 32-bit emulation; GOARCH is %s", runtime.GOARCH)
	}
	if os.Getenv("CNBRIDGED_TEST_386_CHILD") != "" {
		t.Skip("already the 386 child")
	}
	if testing.Short() {
		t.Skip("builds the package for 386 (slow); skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool on PATH to build the 386 test binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "listener.386.test")
	build := exec.Command(goBin, "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c for GOARCH=386: %v\n%s", err, out)
	}
	run := exec.Command(bin, "-test.v", "-test.count=1", "-test.run", "^(TestMmsghdrSize|TestBatchAndSender)$")
	run.Env = append(os.Environ(), "CNBRIDGED_TEST_386_CHILD=1")
	out, err := run.CombinedOutput()
	if err != nil {
		if strings.Contains(err.Error(), "exec format error") {
			t.Skipf("this kernel cannot run 386 binaries: %v", err)
		}
		t.Fatalf("386 test binary: %v\n%s", err, out)
	}
	for _, want := range []string{"GOARCH=386: struct mmsghdr is 32 bytes", "--- PASS: TestMmsghdrSize", "--- PASS: TestBatchAndSender"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("386 test output lacks %q:\n%s", want, out)
		}
	}
}
