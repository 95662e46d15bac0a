// Package filelock takes an exclusive flock(2) on an open file and, when
// another open file description holds it, says which process took it
// (from /proc/locks), so that an error can name the other writer.
//
// flock locks belong to the open file description: a second open of the
// same file conflicts even within one process, a dup (or a child that
// inherited the descriptor) shares the lock, and the lock goes with the
// last descriptor of that description. A rename keeps it (it is on the
// inode, not the name).
package filelock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HeldError is returned by Lock when another open file description holds
// the lock.
type HeldError struct {
	Path string
	// PID is the process that took the lock (from /proc/locks), 0 when
	// unknown.
	PID int
}

func (e *HeldError) Error() string {
	switch {
	case e.PID == 0:
		return fmt.Sprintf("%s is locked by another process (its pid is not in /proc/locks)", e.Path)
	case e.PID == os.Getpid():
		return fmt.Sprintf("%s is locked by this process (pid %d): another of its sinks writes it", e.Path, e.PID)
	}
	return fmt.Sprintf("%s is locked by pid %d%s", e.Path, e.PID, describe(e.PID))
}

// ErrHeld matches every *HeldError with errors.Is.
var ErrHeld = errors.New("file is locked by another writer")

// Is makes errors.Is(err, ErrHeld) true for a *HeldError.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock takes an exclusive lock on f without waiting. When another open
// file description holds it, the error is a *HeldError naming the holder.
func Lock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	pid, _ := Holder(f)
	return &HeldError{Path: f.Name(), PID: pid}
}

// Holder returns the pid of the process holding a flock on f's inode,
// from /proc/locks; 0 when none is listed.
func Holder(f *os.File) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	pl, err := os.Open("/proc/locks")
	if err != nil {
		return 0, err
	}
	defer pl.Close()
	return holder(pl, uint64(unix.Major(uint64(st.Dev))), uint64(unix.Minor(uint64(st.Dev))), st.Ino)
}

// holder finds, in /proc/locks content, the process holding a FLOCK lock
// on the inode major:minor:ino.
func holder(r io.Reader, major, minor, ino uint64) (int, error) {
	// 1: FLOCK  ADVISORY  WRITE 23780 fe:00:9977882 0 EOF
	// (fs/locks.c lock_get_status: "%02x:%02x:%lu", major and minor in
	// hex). A blocked waiter's line starts "1: -> FLOCK"; skip those.
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			continue
		}
		return pid, nil
	}
	return 0, sc.Err()
}

// describe names the process: " (cnbridged)" from /proc/PID/comm.
func describe(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
