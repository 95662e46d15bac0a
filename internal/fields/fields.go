// Package fields is the typed model of cnbridged's JSON line (the output
// contract in README.md): one Go value per record, every member named as
// on the line. Filters (a route's where, tap --where, query ps --where),
// schema encoders (ECS, OCSF, OpenTelemetry) and query answers read
// records through it, so that a field added to the line once is
// filterable, mapped and queryable everywhere.
//
// A Record is built two ways, which give equal values for the same
// record: from a routed record in the daemon (event.Encoder.Fields, next
// to the line's encoder), and by parsing a line that came from a file, a
// tap socket or NATS (Parse). event's round-trip test holds the two, and
// the JSON encoder, in step: every member the encoder writes is a field
// here, present exactly when the line has it.
//
// # Presence
//
// A member the line may leave out is an Opt: Set tells whether the record
// carries it, and a zero value that is carried (uid 0, exit status 0) is
// Set. Numbers are int64 whatever their width on the wire; times are the
// line's RFC 3339 strings.
//
// The package is pure: it imports nothing of cnbridged and does no I/O.
package fields

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Opt is a member that a record may or may not carry.
type Opt[T any] struct {
	V   T
	Set bool
}

// Some returns a carried member.
func Some[T any](v T) Opt[T] { return Opt[T]{V: v, Set: true} }

// Get returns the value and whether the record carries it.
func (o Opt[T]) Get() (T, bool) { return o.V, o.Set }

// Or returns the value, or def when the record does not carry it.
func (o Opt[T]) Or(def T) T {
	if o.Set {
		return o.V
	}
	return def
}

// IsZero reports an absent member (encoding/json's omitzero).
func (o Opt[T]) IsZero() bool { return !o.Set }

// MarshalJSON encodes the value.
func (o Opt[T]) MarshalJSON() ([]byte, error) { return json.Marshal(o.V) }

// UnmarshalJSON decodes a present member; null counts as absent.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*o = Opt[T]{}
		return nil
	}
	if err := json.Unmarshal(b, &o.V); err != nil {
		return err
	}
	o.Set = true
	return nil
}

// Record types: the "type" member of marker lines. An event line (a
// connector message) has no type.
const (
	TypeLoss     = "loss"
	TypeGap      = "gap"
	TypeExitLost = "exit_lost"
	// TypeTapDropped is written by the tap server to a client that read
	// too slowly: the lines it did not get.
	TypeTapDropped = "tap_dropped"
	// TypeSuppressed counts records a route's rate limit did not send.
	TypeSuppressed = "suppressed"
	// TypeLife is a process's life folded into one record (a route's
	// fold: lifecycle).
	TypeLife = "life"
)

// Record is one JSON line.
type Record struct {
	Time string `json:"time"` // receive time, RFC 3339 UTC, nanoseconds
	Host string `json:"host"`
	// Type is set on marker lines (TypeLoss, TypeGap, …).
	Type Opt[string] `json:"type,omitzero"`

	// The cn_msg header (event lines; idx and val on loss markers too).
	Idx    Opt[int64] `json:"idx,omitzero"`
	Val    Opt[int64] `json:"val,omitzero"`
	Seq    Opt[int64] `json:"seq,omitzero"`
	Ack    Opt[int64] `json:"ack,omitzero"`
	Flags  Opt[int64] `json:"flags,omitzero"`
	Len    Opt[int64] `json:"len,omitzero"`
	Sender Opt[int64] `json:"sender,omitzero"`

	// Loss markers.
	CPU     Opt[int64] `json:"cpu,omitzero"`
	FromSeq Opt[int64] `json:"from_seq,omitzero"`
	ToSeq   Opt[int64] `json:"to_seq,omitzero"`
	Lost    Opt[int64] `json:"lost,omitzero"`

	// Gap records (a time cnbridged was not listening).
	Reason        Opt[string] `json:"reason,omitzero"`
	From          Opt[string] `json:"from,omitzero"`
	To            Opt[string] `json:"to,omitzero"`
	PIDsAllocated Opt[int64]  `json:"pids_allocated,omitzero"`
	PIDsWrapped   Opt[bool]   `json:"pids_wrapped,omitzero"`
	CleanStop     Opt[bool]   `json:"clean_stop,omitzero"`

	// Tap drop markers.
	Dropped Opt[int64] `json:"dropped,omitzero"`

	// Suppression records (and From, To: the first and last suppressed
	// record's receive time).
	Route    Opt[int64]             `json:"route,omitzero"` // the route's index in the config
	Key      Opt[map[string]string] `json:"key,omitzero"`   // path → value; {} for the overflow key
	Overflow Opt[bool]              `json:"overflow,omitzero"`
	Count    Opt[int64]             `json:"count,omitzero"`

	// Proc is the kernel's process event (connector 1.1).
	Proc Opt[Proc] `json:"proc,omitzero"`
	// Process, Parent and Ancestors are the process table's description
	// (routes with enrich: true; exit_lost records carry Process).
	Process   Opt[Process] `json:"process,omitzero"`
	Parent    Opt[Parent]  `json:"parent,omitzero"`
	Ancestors []Ancestor   `json:"ancestors,omitempty"`

	// Data is the payload of any other connector id, base64.
	Data Opt[string] `json:"data,omitzero"`

	// Life is a folded process life (type life).
	Life Opt[Life] `json:"life,omitzero"`
}

// Life is one process's life in one record: what a route with fold:
// lifecycle sends instead of its fork, exec… and exit. The record's
// process is the process as its last event described it.
type Life struct {
	// Start is the process's start (its start_time); End the receive time
	// of its exit, absent for an open life.
	Start      Opt[string] `json:"start,omitzero"`
	End        Opt[string] `json:"end,omitzero"`
	DurationNs Opt[int64]  `json:"duration_ns,omitzero"`
	// Forked: the route saw the fork (else the life began before, or the
	// fork was not routed).
	Forked bool `json:"forked"`
	// Execs are the images the process ran, in order.
	Execs []Image `json:"execs,omitempty"`
	// ExecsDropped counts execs beyond the bound of Execs.
	ExecsDropped Opt[int64] `json:"execs_dropped,omitzero"`
	// Events is how many records the life folds (threads' included).
	Events int64 `json:"events"`
	// Exit status, as on the exit event.
	ExitCode   Opt[int64]  `json:"exit_code,omitzero"`
	ExitStatus Opt[int64]  `json:"exit_status,omitzero"`
	Signal     Opt[Signal] `json:"signal,omitzero"`
	CoreDumped Opt[bool]   `json:"core_dumped,omitzero"`
	// Open: the process was alive when the route stopped (or its life
	// was evicted: Evicted); ExitLost: its exit was lost (exit_lost).
	Open     Opt[bool] `json:"open,omitzero"`
	Evicted  Opt[bool] `json:"evicted,omitzero"`
	ExitLost Opt[bool] `json:"exit_lost,omitzero"`
}

// Image is one exec of a life.
type Image struct {
	Time    string   `json:"time"` // the exec's receive time
	Exe     string   `json:"exe"`
	Cmdline []string `json:"cmdline"`
}

// Proc is a process event, members under the kernel's names. Which are
// present depends on Event (README's Output table).
type Proc struct {
	Event       string `json:"event"`
	CPU         int64  `json:"cpu"`
	TimestampNs int64  `json:"timestamp_ns"` // CLOCK_MONOTONIC

	Err        Opt[int64]  `json:"err,omitzero"` // acknowledgements (event none)
	ParentPID  Opt[int64]  `json:"parent_pid,omitzero"`
	ParentTGID Opt[int64]  `json:"parent_tgid,omitzero"`
	ChildPID   Opt[int64]  `json:"child_pid,omitzero"`
	ChildTGID  Opt[int64]  `json:"child_tgid,omitzero"`
	PID        Opt[int64]  `json:"pid,omitzero"`
	TGID       Opt[int64]  `json:"tgid,omitzero"`
	RUID       Opt[int64]  `json:"ruid,omitzero"`
	EUID       Opt[int64]  `json:"euid,omitzero"`
	RGID       Opt[int64]  `json:"rgid,omitzero"`
	EGID       Opt[int64]  `json:"egid,omitzero"`
	TracerPID  Opt[int64]  `json:"tracer_pid,omitzero"`
	TracerTGID Opt[int64]  `json:"tracer_tgid,omitzero"`
	Comm       Opt[string] `json:"comm,omitzero"`
	ExitCode   Opt[int64]  `json:"exit_code,omitzero"`   // the wait status
	ExitSignal Opt[int64]  `json:"exit_signal,omitzero"` // -1: none (a thread's exit)
	ExitStatus Opt[int64]  `json:"exit_status,omitzero"` // exited normally
	Signal     Opt[Signal] `json:"signal,omitzero"`      // killed by a signal
	CoreDumped Opt[bool]   `json:"core_dumped,omitzero"`
	Thread     Opt[bool]   `json:"thread,omitzero"`
	What       Opt[int64]  `json:"what,omitzero"` // an event type cnbridged does not know
}

// Signal is the name of the signal that killed a process ("SIGKILL"); a
// signal without a name is its number in decimal ("42"), which the line
// writes as a JSON number.
type Signal string

// MarshalJSON writes a number for a signal without a name, as the line
// does.
func (s Signal) MarshalJSON() ([]byte, error) {
	if _, err := strconv.ParseUint(string(s), 10, 8); err == nil {
		return []byte(s), nil
	}
	return json.Marshal(string(s))
}

// UnmarshalJSON reads a name or a number.
func (s *Signal) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		n, err := strconv.ParseUint(string(b), 10, 8)
		if err != nil {
			return fmt.Errorf("signal: %s: want a name or a number", b)
		}
		*s = Signal(strconv.FormatUint(n, 10))
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Signal(v)
	return nil
}

// Process describes the event's process, from the process table. A
// process the table could not describe carries only Gone (and PID); one
// the daemon had no time to describe, only Skipped.
type Process struct {
	EntityID         Opt[string]   `json:"entity_id,omitzero"`
	PID              Opt[int64]    `json:"pid,omitzero"`
	TGID             Opt[int64]    `json:"tgid,omitzero"`
	PPID             Opt[int64]    `json:"ppid,omitzero"`
	Exe              Opt[string]   `json:"exe,omitzero"`
	Cmdline          Opt[[]string] `json:"cmdline,omitzero"`
	CmdlineTruncated Opt[bool]     `json:"cmdline_truncated,omitzero"`
	Cwd              Opt[string]   `json:"cwd,omitzero"`
	UID              Opt[int64]    `json:"uid,omitzero"`
	EUID             Opt[int64]    `json:"euid,omitzero"`
	GID              Opt[int64]    `json:"gid,omitzero"`
	EGID             Opt[int64]    `json:"egid,omitzero"`
	User             Opt[string]   `json:"user,omitzero"`
	Comm             Opt[string]   `json:"comm,omitzero"`
	Cgroup           Opt[string]   `json:"cgroup,omitzero"`
	ContainerID      Opt[string]   `json:"container_id,omitzero"`
	PodUID           Opt[string]   `json:"pod_uid,omitzero"`
	StartTime        Opt[string]   `json:"start_time,omitzero"`
	PreviousExe      Opt[string]   `json:"previous_exe,omitzero"`
	DurationNs       Opt[int64]    `json:"duration_ns,omitzero"`
	Stale            Opt[bool]     `json:"stale,omitzero"`
	Seeded           Opt[bool]     `json:"seeded,omitzero"`
	Missing          Opt[[]string] `json:"missing,omitzero"`
	Late             Opt[[]string] `json:"late,omitzero"`
	Gone             Opt[bool]     `json:"gone,omitzero"`
	Skipped          Opt[bool]     `json:"skipped,omitzero"`
	// Exited is set on rows of fleet query answers (lineage, tree) for a
	// process the table remembers after its exit; events never carry it.
	Exited Opt[bool] `json:"exited,omitzero"`
}

// Parent is the process's parent as the table knows it; Exited when it
// has exited (described as the table last knew it).
type Parent struct {
	EntityID Opt[string]   `json:"entity_id,omitzero"`
	PID      Opt[int64]    `json:"pid,omitzero"`
	Exe      Opt[string]   `json:"exe,omitzero"`
	Cmdline  Opt[[]string] `json:"cmdline,omitzero"`
	Exited   Opt[bool]     `json:"exited,omitzero"`
}

// Ancestor is one of the parent's ancestors, nearest first (the parent
// first); Exited as in Parent.
type Ancestor struct {
	EntityID Opt[string] `json:"entity_id,omitzero"`
	PID      Opt[int64]  `json:"pid,omitzero"`
	Exe      Opt[string] `json:"exe,omitzero"`
	Exited   Opt[bool]   `json:"exited,omitzero"`
}

// Parse decodes one JSON line. Members it does not know are ignored, so
// that a reader accepts lines from a newer daemon; ParseStrict refuses
// them.
func Parse(line []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("event line: %w", err)
	}
	return &r, nil
}

// ParseStrict is Parse refusing members the model does not have.
func ParseStrict(line []byte) (*Record, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	var r Record
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("event line: %w", err)
	}
	return &r, nil
}

// Event is the record's kind as people name it: the process event
// ("fork", "exec", …), the marker type ("loss", "gap", …), or "msg" for
// a message of another connector id.
func (r *Record) Event() string {
	switch {
	case r.Type.Set:
		return r.Type.V
	case r.Proc.Set:
		return r.Proc.V.Event
	}
	return "msg"
}
