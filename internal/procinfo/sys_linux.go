package procinfo

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls are made directly on NUL-terminated byte slices: the
// unix package's wrappers copy every path string, which would cost an
// allocation per file read.

// isGone reports whether err means the process no longer exists.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// isDenied reports whether err is a permission error: reading another
// user's /proc/<pid>/exe needs ptrace access.
func isDenied(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// openDir opens the directory at path, which ends in a NUL byte.
func openDir(path []byte) (int, error) {
	return openAtFlags(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// openDirAt opens the directory at path, which ends in a NUL byte,
// relative to dir.
func openDirAt(dir int, path []byte) (int, error) {
	return openAtFlags(dir, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// openAt opens the file at path, which ends in a NUL byte, relative to dir.
func openAt(dir int, path []byte) (int, error) {
	return openAtFlags(dir, path, unix.O_RDONLY|unix.O_CLOEXEC)
}

func openAtFlags(dir int, path []byte, flags int) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dir),
			uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

// readlinkAt reads the symbolic link at path, which ends in a NUL byte,
// relative to dir, into buf.
func readlinkAt(dir int, path []byte, buf []byte) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dir),
		uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }

// Clocks returns CLOCK_BOOTTIME - CLOCK_MONOTONIC (the time spent
// suspended since boot) and the wall time of boot, in nanoseconds. The
// three clocks are read close together; the offset is good to a few
// microseconds.
func Clocks() (boottimeOffsetNs, bootWallNs int64, err error) {
	var mono, boot, mono2 unix.Timespec
	if err = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return 0, 0, err
	}
	if err = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return 0, 0, err
	}
	if err = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono2); err != nil {
		return 0, 0, err
	}
	var wall unix.Timespec
	if err = unix.ClockGettime(unix.CLOCK_REALTIME, &wall); err != nil {
		return 0, 0, err
	}
	m := (mono.Nano() + mono2.Nano()) / 2
	return boot.Nano() - m, wall.Nano() - boot.Nano(), nil
}
