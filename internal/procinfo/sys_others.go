//go:build !linux

package procinfo

import (
	"errors"
	"fmt"
)

// errUnsupported is what Reader.Read returns on systems other than Linux.
var errUnsupported = fmt.Errorf("procinfo: reading processes needs linux: %w", errors.ErrUnsupported)

func isGone(error) bool   { return false }
func isDenied(error) bool { return false }

func openDir([]byte) (int, error)                 { return -1, errUnsupported }
func openAt(int, []byte) (int, error)             { return -1, errUnsupported }
func openDirAt(int, []byte) (int, error)          { return -1, errUnsupported }
func readlinkAt(int, []byte, []byte) (int, error) { return 0, errUnsupported }
func readFD(int, []byte) (int, error)             { return 0, errUnsupported }
func closeFD(int)                                 {}

// Clocks needs Linux.
func Clocks() (int64, int64, error) { return 0, 0, errUnsupported }
