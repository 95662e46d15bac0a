// Package procinfo reads what /proc knows about a process, to enrich process
// connector events: its comm, executable, command line, parent, real uid and
// gid, cgroup v2 path, container id and pod uid; it lists the processes
// (Scan), reads the boot id, the clocks the process table converts
// between, and user names from the host's passwd.
//
// Reading is kept apart from parsing: the parsers take bytes and are pure,
// and the Reader only opens, reads and closes files, reusing one buffer so
// that a Read allocates little more than the strings it returns.
package procinfo

// Info is what /proc said about one process.
type Info struct {
	// Comm is the task's command name (/proc/<pid>/comm, at most 15 bytes).
	Comm string
	// Exe is the target of /proc/<pid>/exe. It is empty for kernel threads,
	// zombies and processes whose executable the reader may not see (then
	// named in Unreadable). A
	// deleted executable keeps the kernel's " (deleted)" suffix.
	Exe string
	// Cmdline is /proc/<pid>/cmdline split at NUL bytes, read up to the
	// Reader's MaxCmdline bytes. It is nil for kernel threads and zombies.
	Cmdline []string
	// CmdlineTruncated reports that the command line was longer than
	// MaxCmdline: its last element is then cut short.
	CmdlineTruncated bool
	// PPID, UID, EUID, GID and EGID are the parent pid and the real and
	// effective uid and gid, from the PPid:, Uid: and Gid: lines of
	// /proc/<pid>/status. They are as seen from the reader's pid and user
	// namespaces.
	PPID, UID, EUID, GID, EGID uint32
	// Cwd is the target of /proc/<pid>/cwd ("" when it cannot be read).
	Cwd string
	// Unreadable names the links ("exe", "cwd") the reader was not allowed
	// to follow: another user's process, without ptrace access
	// (CAP_SYS_PTRACE). They are left empty.
	Unreadable []string
	// StartTicks is field 22 of /proc/<pid>/stat: the start, in
	// CLOCK_BOOTTIME clock ticks since boot.
	StartTicks uint64
	// Cgroup is the process's cgroup v2 path (the "0::" line of
	// /proc/<pid>/cgroup), relative to the reader's cgroup namespace. It is
	// empty on a system without cgroup v2.
	Cgroup string
	// ContainerID is ContainerID(Cgroup), PodUID is PodUID(Cgroup).
	ContainerID, PodUID string
	// Gone reports that the process no longer existed when it was read;
	// every other field is then zero.
	Gone bool
}
