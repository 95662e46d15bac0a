// Package proc holds the values that describe a process, beneath the
// packages that keep or carry them: Process (what the process table knows
// about a thread group at one moment), Observed (what a /proc read said)
// and USER_HZ, the unit of the times /proc reports. Values only: /proc is
// read by procinfo, the table kept by proctable, records encoded by event.
package proc

// UserHZ is USER_HZ, the unit of the times in /proc/<pid>/stat
// (starttime, utime, stime): 100 on every Linux architecture Go supports.
const UserHZ = 100

// TickNs is one USER_HZ clock tick in nanoseconds.
const TickNs = 1_000_000_000 / UserHZ

// Field names for Process.Missing.
const (
	FieldExe     = "exe"
	FieldCmdline = "cmdline"
	FieldCwd     = "cwd"
	FieldCgroup  = "cgroup"
	FieldUID     = "uid"
	FieldGID     = "gid"
	FieldComm    = "comm"
	FieldParent  = "parent"
)

// Process is what the process table knows about one thread group at one moment.
// It is never changed once the table has handed it out.
type Process struct {
	EntityID        string
	PID, TGID, PPID uint32
	StartTicks      uint64 // CLOCK_BOOTTIME clock ticks since boot
	StartTime       int64  // Unix nanoseconds
	// ForkNs is the fork event's CLOCK_MONOTONIC timestamp; 0 for a
	// process the table did not see fork.
	ForkNs uint64
	// SeenNs is, for a process the table learnt from /proc, the
	// CLOCK_MONOTONIC time its read began (0: unknown).
	SeenNs           uint64
	Exe              string
	Cmdline          []string
	CmdlineTruncated bool
	Cwd              string
	UID, EUID        uint32
	GID, EGID        uint32
	User             string
	Comm             string
	Cgroup           string
	ContainerID      string
	PodUID           string
	// PreviousExe is the image before the last exec (set from an exec on;
	// empty when that image is unknown or was read stale).
	PreviousExe string
	// Stale: the exe, cmdline and cwd came from a /proc read that may
	// already show a later exec of the same pid.
	Stale bool
	// Seeded: found by a /proc scan (at start or after loss), not by a
	// fork event.
	Seeded bool
	// Missing names the fields that could not be read and were inherited
	// from the parent or left empty.
	Missing []string
	// Late names the fields of the last exec's image (exe, cmdline, cwd,
	// cgroup, comm) that were not read as its event was received but
	// later, or not at all when the process had gone by then (they are in
	// Missing too). Inherited at fork, like the image.
	Late []string
	// Execs counts the execs the table saw for this process.
	Execs uint32
	// Exited: the process has ended; this is the last snapshot the table
	// had of it, remembered for the lineage of the processes it started
	// (see proctable.Table.Parent). ExitNs is its exit event's CLOCK_MONOTONIC
	// timestamp, 0 when that event was lost.
	Exited bool
	ExitNs uint64
}

// Observed is what /proc said about a process, handed in by the caller.
type Observed struct {
	PID, PPID        uint32
	StartTicks       uint64
	Exe              string
	Cmdline          []string
	CmdlineTruncated bool
	Cwd              string
	UID, EUID        uint32
	GID, EGID        uint32
	User             string
	Comm             string
	Cgroup           string
	ContainerID      string
	PodUID           string
	// Missing names fields that could not be read (e.g. exe of a kernel
	// thread, or a permission error); Gone reports that the process had
	// gone and nothing was read.
	Missing []string
	Gone    bool
	// Late names the image fields read after the event was received
	// rather than as it was (an exec's, see Process.Late).
	Late []string
	// ReadNs is the CLOCK_MONOTONIC time the read began (0: unknown): a
	// read that began after a fork event tells that fork's process apart
	// from a later one (see proctable.Table.Seed).
	ReadNs uint64
	// Threads are the ids of the group's other threads (its task
	// directory), for proctable.Table.Seed: a group keeps its entry while
	// the table tracks a thread of it.
	Threads []uint32
	// StartOnly: only PID and StartTicks were read (Resync of a process
	// the table holds). Seed of a process the table lacks from it adds
	// an entry a full read fills in later.
	StartOnly bool
}

// DurationNs returns how long the process ran until an event at exitNs
// (CLOCK_MONOTONIC): from its fork event when the table saw it (exact),
// else from its start tick (to the tick) with offsetNs = CLOCK_BOOTTIME -
// CLOCK_MONOTONIC.
func (p *Process) DurationNs(exitNs uint64, offsetNs int64) int64 {
	if p.ForkNs != 0 {
		return int64(exitNs - p.ForkNs)
	}
	return int64(exitNs) + offsetNs - int64(p.StartTicks)*TickNs
}
