// Package tap is the live view of a daemon's events: a Unix-socket server
// the daemon feeds with every routed record (each client behind its own
// bounded buffer that drops and counts), the readers of that socket and of
// NATS, filters over the event JSON lines, and forkstat-like columns.
package tap

import (
	"encoding/json"
	"fmt"
)

// Marker types: lines that are not events. They are never filtered out
// (except by --host).
const (
	TypeLoss     = "loss"
	TypeGap      = "gap"
	TypeExitLost = "exit_lost"
	// TypeDropped is written by the tap server itself: lines this client
	// did not get because it read too slowly.
	TypeDropped = "tap_dropped"
)

// Line is the part of an event JSON line the tap filters and shows. Raw
// keeps the line as received, for --json.
type Line struct {
	Time      string     `json:"time"`
	Host      string     `json:"host"`
	Type      string     `json:"type"`
	Idx       uint32     `json:"idx"`
	Val       uint32     `json:"val"`
	Proc      *Proc      `json:"proc"`
	Process   *Process   `json:"process"`
	Parent    *Ancestor  `json:"parent"`
	Ancestors []Ancestor `json:"ancestors"`

	// Markers.
	Lost          uint64 `json:"lost"`
	FromSeq       uint32 `json:"from_seq"`
	ToSeq         uint32 `json:"to_seq"`
	Reason        string `json:"reason"`
	From          string `json:"from"`
	To            string `json:"to"`
	PIDsAllocated *int64 `json:"pids_allocated"`
	Dropped       uint64 `json:"dropped"`

	Raw []byte `json:"-"`
}

// Proc is the kernel's process event.
type Proc struct {
	Event      string          `json:"event"`
	PID        uint32          `json:"pid"`
	TGID       uint32          `json:"tgid"`
	ParentPID  uint32          `json:"parent_pid"`
	ParentTGID uint32          `json:"parent_tgid"`
	ChildPID   uint32          `json:"child_pid"`
	ChildTGID  uint32          `json:"child_tgid"`
	RUID       *uint32         `json:"ruid"`
	Comm       string          `json:"comm"`
	ExitStatus *int            `json:"exit_status"`
	Signal     json.RawMessage `json:"signal"`
	CoreDumped bool            `json:"core_dumped"`
	Thread     bool            `json:"thread"`
}

// Process is the enrichment the daemon's process table adds.
type Process struct {
	EntityID    string   `json:"entity_id"`
	PID         uint32   `json:"pid"`
	PPID        uint32   `json:"ppid"`
	Exe         string   `json:"exe"`
	Comm        string   `json:"comm"`
	Cmdline     []string `json:"cmdline"`
	UID         *uint32  `json:"uid"`
	ContainerID string   `json:"container_id"`
	DurationNs  *int64   `json:"duration_ns"`
	Gone        bool     `json:"gone"`
}

// Ancestor is a parent or an ancestor of the process.
type Ancestor struct {
	EntityID string `json:"entity_id"`
	PID      uint32 `json:"pid"`
	Exe      string `json:"exe"`
}

// Parse decodes one JSON line. The returned Line keeps b as Raw (not a
// copy).
func Parse(b []byte) (*Line, error) {
	var l Line
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("event line: %w", err)
	}
	l.Raw = b
	return &l, nil
}

// IsMarker reports whether l is a loss, gap, lost-exit or drop marker.
func (l *Line) IsMarker() bool { return l.Type != "" }

// Event is the event name ("fork", "exec", …), the marker type, or "msg"
// for a non-process message.
func (l *Line) Event() string {
	switch {
	case l.Type != "":
		return l.Type
	case l.Proc != nil:
		return l.Proc.Event
	}
	return "msg"
}

// PID is the process the event is about: the child of a fork.
func (l *Line) PID() (uint32, bool) {
	switch {
	case l.Proc != nil && l.Proc.Event == "fork":
		return l.Proc.ChildPID, true
	case l.Proc != nil && l.Proc.PID != 0:
		return l.Proc.PID, true
	case l.Process != nil && l.Process.PID != 0:
		return l.Process.PID, true
	}
	return 0, false
}

// PPID is the parent of PID: the process table's when the line has it,
// else the event's, the same order as the PPID column of the text row
// (event.TextFormatter), so that --ppid selects what the rows show.
func (l *Line) PPID() (uint32, bool) {
	switch {
	case l.Process != nil && l.Process.PPID != 0:
		return l.Process.PPID, true
	case l.Proc != nil && l.Proc.ParentTGID != 0:
		return l.Proc.ParentTGID, true
	case l.Parent != nil && l.Parent.PID != 0:
		return l.Parent.PID, true
	}
	return 0, false
}

// Comm is the command name, from a comm event or the process table.
func (l *Line) Comm() string {
	if l.Proc != nil && l.Proc.Comm != "" {
		return l.Proc.Comm
	}
	if l.Process != nil {
		return l.Process.Comm
	}
	return ""
}

// Exe is the executable's path from the process table.
func (l *Line) Exe() string {
	if l.Process != nil {
		return l.Process.Exe
	}
	return ""
}

// ContainerID is the process's container id from the process table.
func (l *Line) ContainerID() string {
	if l.Process != nil {
		return l.Process.ContainerID
	}
	return ""
}
