package filelock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHolderParses(t *testing.T) {
	const locks = `1: POSIX  ADVISORY  WRITE 700 fe:00:42 0 EOF
2: FLOCK  ADVISORY  WRITE 800 fe:00:4242 0 EOF
2: -> FLOCK  ADVISORY  WRITE 801 fe:00:42 0 EOF
3: FLOCK  ADVISORY  WRITE 900 fe:00:42 0 EOF
4: FLOCK  ADVISORY  WRITE 950 103:0a:42 0 EOF
`
	for _, tt := range []struct {
		major, minor, ino uint64
		want              int
	}{
		{0xfe, 0, 42, 900}, // not the POSIX lock, not the waiter, not ino 4242
		{0x103, 0x0a, 42, 950},
		{0xfe, 0, 43, 0},
	} {
		got, err := holder(strings.NewReader(locks), tt.major, tt.minor, tt.ino)
		if err != nil || got != tt.want {
			t.Errorf("holder(%x:%x:%d) = %d, %v; want %d", tt.major, tt.minor, tt.ino, got, err, tt.want)
		}
	}
}

// TestLockNamesHolder: a second open file description is refused, in this
// process and from another one, and the error names the pid that holds
// the lock; a dup shares it; closing releases it.
func TestLockNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a := open()
	if err := Lock(a); err != nil {
		t.Fatal(err)
	}
	b := open()
	err := Lock(b)
	var he *HeldError
	if !errors.As(err, &he) || he.PID != os.Getpid() || !errors.Is(err, ErrHeld) {
		t.Fatalf("second open in this process: got %v, want a HeldError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "locked by this process (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("got %q", err)
	}
	a.Close()
	if err := Lock(b); err != nil {
		t.Fatalf("after the holder closed: %v", err)
	}

	// Another process: flock(1) holds it while sleeping.
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skipf("needs flock(1) (util-linux): %v", err)
	}
	b.Close()
	cmd := exec.Command("flock", "-x", path, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := open()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = Lock(c)
		if err != nil || time.Now().After(deadline) {
			break
		}
		unlock(t, c) // flock(1) has not taken it yet
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.As(err, &he) || he.PID != cmd.Process.Pid {
		t.Fatalf("held by flock(1) pid %d: got %v", cmd.Process.Pid, err)
	}
	if want := "locked by pid " + strconv.Itoa(cmd.Process.Pid) + " (flock)"; !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to contain %q", err, want)
	}
}

func unlock(t *testing.T, f *os.File) {
	t.Helper()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
}
