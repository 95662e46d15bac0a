// Package statefile keeps cnbridged's restart trace, like auditd's
// DAEMON_START/DAEMON_END records: what a daemon started again in the same
// boot needs to say how long it was not listening and what the kernel
// numbered meanwhile.
//
// Two files in the state directory:
//   - state.json: boot id, when it was written, whether the daemon stopped
//     cleanly, and /proc/sys/kernel/ns_last_pid; and, for the commands that
//     ask the running daemon (health, stats), its pid and the address its
//     metrics endpoint is bound to. Written whole (temp file, fsync,
//     rename) every few seconds, when the metrics endpoint is up, and at
//     a clean stop.
//   - seqs.bin: the last seq read from each kernel sequence stream, in a
//     shared file mapping the reader updates per message. A process killed
//     with SIGKILL leaves its pages in the page cache, so the table is
//     exact up to the last message read, whatever the save interval.
//
// Encoding and decoding are pure; the I/O around them is thin.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateName and SeqsName are the files' names in the state directory.
const (
	StateName = "state.json"
	SeqsName  = "seqs.bin"
)

// version is the state.json format.
const version = 1

// State is the content of state.json.
type State struct {
	BootID string
	// Time is when the state was written: the stop time after a clean
	// stop, else the last periodic save before the daemon died.
	Time time.Time
	// Clean is set by a requested stop's final write.
	Clean bool
	// LastPID is /proc/sys/kernel/ns_last_pid at Time.
	LastPID uint32
	// PIDMax is /proc/sys/kernel/pid_max at Time (for wrap-around).
	PIDMax uint32

	// What the running daemon is and where it can be reached, for the
	// commands that ask it (health, stats): its pid, and the address its
	// metrics endpoint is bound to ("" before it is, or without one).
	// metrics.listen takes a restart to change, so after a reload that
	// changed it this is where the daemon is, not where its config says.
	PID     int
	Metrics string
}

type stateJSON struct {
	Version int       `json:"version"`
	BootID  string    `json:"boot_id"`
	Time    time.Time `json:"time"`
	Clean   bool      `json:"clean"`
	LastPID uint32    `json:"ns_last_pid"`
	PIDMax  uint32    `json:"pid_max"`
	PID     int       `json:"pid,omitempty"`
	Metrics string    `json:"metrics,omitempty"`
}

// ErrCorrupt is returned for a state that does not decode.
var ErrCorrupt = errors.New("state file is corrupt")

// Encode returns s as JSON.
func Encode(s State) []byte {
	b, _ := json.Marshal(stateJSON{Version: version, BootID: s.BootID, Time: s.Time.UTC(), Clean: s.Clean, LastPID: s.LastPID, PIDMax: s.PIDMax,
		PID: s.PID, Metrics: s.Metrics})
	return append(b, '\n')
}

// Decode parses a state written by Encode: the version, a boot id and a
// time are required.
func Decode(b []byte) (State, error) {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	switch {
	case j.Version != version:
		return State{}, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, j.Version, version)
	case len(j.BootID) != bootIDLen:
		return State{}, fmt.Errorf("%w: boot_id %q is not %d characters", ErrCorrupt, j.BootID, bootIDLen)
	case j.Time.IsZero():
		return State{}, fmt.Errorf("%w: no time", ErrCorrupt)
	case j.Time.UTC().Year() < 1 || j.Time.UTC().Year() > 9999:
		return State{}, fmt.Errorf("%w: time %s is outside years 1..9999 in UTC", ErrCorrupt, j.Time)
	case j.PIDMax != 0 && j.LastPID > j.PIDMax:
		return State{}, fmt.Errorf("%w: ns_last_pid %d above pid_max %d", ErrCorrupt, j.LastPID, j.PIDMax)
	case j.PID < 0:
		return State{}, fmt.Errorf("%w: pid %d", ErrCorrupt, j.PID)
	}
	return State{BootID: j.BootID, Time: j.Time, Clean: j.Clean, LastPID: j.LastPID, PIDMax: j.PIDMax, PID: j.PID, Metrics: j.Metrics}, nil
}

// Write stores s in dir/state.json atomically: a temp file in dir,
// fsynced, renamed over the old one, then dir fsynced.
func Write(dir string, s State) error {
	f, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(Encode(s))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, StateName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Read loads dir/state.json. A missing file is an error wrapping
// os.ErrNotExist; one that does not decode wraps ErrCorrupt.
func Read(dir string) (State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateName))
	if err != nil {
		return State{}, fmt.Errorf("state file: %w", err)
	}
	s, err := Decode(b)
	if err != nil {
		return State{}, fmt.Errorf("state file %s: %w", filepath.Join(dir, StateName), err)
	}
	return s, nil
}

// PIDsAllocated estimates the pids allocated between two ns_last_pid
// readings: last-prev, or across one wrap at pidMax (allocation restarts
// above 300, RESERVED_PIDS). wrapped reports that a wrap was assumed.
// It counts threads too, and cannot see a full cycle.
func PIDsAllocated(prev, last, pidMax uint32) (n uint64, wrapped bool) {
	if last >= prev {
		return uint64(last - prev), false
	}
	const reserved = 300
	if pidMax < prev {
		pidMax = prev
	}
	n = uint64(pidMax-prev) + uint64(last)
	if last > reserved {
		n -= reserved
	}
	return n, true
}
