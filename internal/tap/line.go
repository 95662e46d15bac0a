// Package tap is the live view of a daemon's events: a Unix-socket server
// the daemon feeds with every routed record (each client behind its own
// bounded buffer that drops and counts), the readers of that socket and of
// NATS, filters over the event JSON lines, and forkstat-like columns.
package tap

import (
	"github.com/cnbridged/cnbridged/internal/fields"
)

// Marker types: lines that are not events. They are never filtered out
// (except by --host).
const (
	TypeLoss     = fields.TypeLoss
	TypeGap      = fields.TypeGap
	TypeExitLost = fields.TypeExitLost
	// TypeDropped is written by the tap server itself: lines this client
	// did not get because it read too slowly.
	TypeDropped = fields.TypeTapDropped
)

// Line is one event line: its members in the field model (the one model
// of the JSON line that routes' where, schemas and queries read too), and
// the line as received, for --json and the text columns.
type Line struct {
	fields.Record
	Raw []byte
}

// Parse decodes one JSON line. The returned Line keeps b as Raw (not a
// copy).
func Parse(b []byte) (*Line, error) {
	r, err := fields.Parse(b)
	if err != nil {
		return nil, err
	}
	return &Line{Record: *r, Raw: b}, nil
}

// IsMarker reports whether l is a loss, gap, lost-exit, suppression or
// drop marker: a line with a type, other than a folded life (which is a
// process's record).
func (l *Line) IsMarker() bool { return l.Type.Set && l.Type.V != fields.TypeLife }

// PID is the process the event is about: the child of a fork.
func (l *Line) PID() (uint32, bool) {
	p, pr := &l.Proc, &l.Process
	switch {
	case p.Set && p.V.Event == "fork" && p.V.ChildPID.Set:
		return uint32(p.V.ChildPID.V), true
	case p.Set && p.V.PID.V != 0:
		return uint32(p.V.PID.V), true
	case pr.Set && pr.V.PID.V != 0:
		return uint32(pr.V.PID.V), true
	}
	return 0, false
}

// PPID is the parent of PID: the process table's when the line has it,
// else the event's, the same order as the PPID column of the text row
// (event.TextFormatter), so that --ppid selects what the rows show.
func (l *Line) PPID() (uint32, bool) {
	switch {
	case l.Process.Set && l.Process.V.PPID.V != 0:
		return uint32(l.Process.V.PPID.V), true
	case l.Proc.Set && l.Proc.V.ParentTGID.V != 0:
		return uint32(l.Proc.V.ParentTGID.V), true
	case l.Parent.Set && l.Parent.V.PID.V != 0:
		return uint32(l.Parent.V.PID.V), true
	}
	return 0, false
}

// Comm is the command name, from a comm event or the process table.
func (l *Line) Comm() string {
	if c := l.Proc.V.Comm.V; l.Proc.Set && c != "" {
		return c
	}
	return l.Process.V.Comm.V
}

// Exe is the executable's path from the process table.
func (l *Line) Exe() string { return l.Process.V.Exe.V }

// ContainerID is the process's container id from the process table.
func (l *Line) ContainerID() string { return l.Process.V.ContainerID.V }
