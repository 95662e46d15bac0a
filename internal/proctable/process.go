package proctable

import "github.com/cnbridged/cnbridged/internal/proc"

// Process, Observed and the field names are package proc's (the values
// that describe a process, beneath both this table and the records that
// carry them); the table's own names for them stay, so that its callers
// need not change as the layers settle.
type (
	Process  = proc.Process
	Observed = proc.Observed
)

// Field names for Process.Missing (proc's).
const (
	FieldExe     = proc.FieldExe
	FieldCmdline = proc.FieldCmdline
	FieldCwd     = proc.FieldCwd
	FieldCgroup  = proc.FieldCgroup
	FieldUID     = proc.FieldUID
	FieldGID     = proc.FieldGID
	FieldComm    = proc.FieldComm
	FieldParent  = proc.FieldParent
)

var missingAll = []string{FieldExe, FieldCmdline, FieldCwd, FieldCgroup, FieldUID, FieldGID, FieldComm, FieldParent}

// inherit copies into p what a child shares with its parent after fork.
func inherit(p, parent *Process) {
	p.Exe, p.Cmdline, p.CmdlineTruncated, p.Cwd = parent.Exe, parent.Cmdline, parent.CmdlineTruncated, parent.Cwd
	p.UID, p.EUID, p.GID, p.EGID, p.User = parent.UID, parent.EUID, parent.GID, parent.EGID, parent.User
	p.Comm, p.Cgroup, p.ContainerID, p.PodUID = parent.Comm, parent.Cgroup, parent.ContainerID, parent.PodUID
	p.Stale = parent.Stale
	p.Missing = parent.Missing
	p.Late = parent.Late
}

func apply(p *Process, o *Observed) {
	p.Exe, p.Cmdline, p.CmdlineTruncated, p.Cwd = o.Exe, o.Cmdline, o.CmdlineTruncated, o.Cwd
	p.UID, p.EUID, p.GID, p.EGID, p.User = o.UID, o.EUID, o.GID, o.EGID, o.User
	p.Comm, p.Cgroup, p.ContainerID, p.PodUID = o.Comm, o.Cgroup, o.ContainerID, o.PodUID
	p.Missing = o.Missing
}

// applyImage applies to p, a process the table knows, what an exec
// changes: the image, working directory and cgroup. Its uids and gids
// stay the table's (a set-id exec changes them in commit_creds, which
// sends uid and gid events before the exec event), and so do the marks of
// fields the read did not cover (uid, gid, parent); the image's marks are
// the read's.
func applyImage(p *Process, o *Observed) {
	p.Exe, p.Cmdline, p.CmdlineTruncated, p.Cwd, p.Comm = o.Exe, o.Cmdline, o.CmdlineTruncated, o.Cwd, o.Comm
	p.Cgroup, p.ContainerID, p.PodUID = o.Cgroup, o.ContainerID, o.PodUID
	var kept []string
	for _, f := range p.Missing {
		switch f {
		case FieldExe, FieldCmdline, FieldCwd, FieldComm, FieldCgroup:
		default:
			kept = append(kept, f)
		}
	}
	p.Missing = appendMissing(kept, o.Missing...)
}

func appendMissing(m []string, fields ...string) []string {
	out := append([]string(nil), m...)
next:
	for _, f := range fields {
		for _, have := range out {
			if have == f {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}
