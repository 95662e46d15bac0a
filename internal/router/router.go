// Package router decides which sinks receive a connector message. A Table is
// built once from the configured routes and is immutable: a config reload
// builds a new table and swaps it in whole, so matching takes no locks.
package router

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// MaxSinks is how many sinks one table can address (one bit each).
const MaxSinks = 64

// Pattern matches connector ids: "1.1", "12.*", "*.3" or "*".
type Pattern struct {
	Idx, Val       uint32
	AnyIdx, AnyVal bool
}

// ParsePattern parses "idx.val" where either part may be "*"; "*" alone
// matches every id.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{AnyIdx: true, AnyVal: true}, nil
	}
	is, vs, ok := strings.Cut(s, ".")
	if !ok {
		return Pattern{}, fmt.Errorf("id pattern %q: want idx.val, idx.* or *", s)
	}
	var p Pattern
	var err error
	if p.Idx, p.AnyIdx, err = parsePart(is); err != nil {
		return Pattern{}, fmt.Errorf("id pattern %q: idx: %w", s, err)
	}
	if p.Val, p.AnyVal, err = parsePart(vs); err != nil {
		return Pattern{}, fmt.Errorf("id pattern %q: val: %w", s, err)
	}
	return p, nil
}

func parsePart(s string) (uint32, bool, error) {
	if s == "*" {
		return 0, true, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false, errors.New("not a decimal u32 or *")
	}
	return uint32(n), false, nil
}

// Matches reports whether id matches the pattern.
func (p Pattern) Matches(id cnmsg.ID) bool {
	return (p.AnyIdx || p.Idx == id.Idx) && (p.AnyVal || p.Val == id.Val)
}

// String returns the pattern in the form ParsePattern reads.
func (p Pattern) String() string {
	if p.AnyIdx && p.AnyVal {
		return "*"
	}
	part := func(n uint32, any bool) string {
		if any {
			return "*"
		}
		return strconv.FormatUint(uint64(n), 10)
	}
	return part(p.Idx, p.AnyIdx) + "." + part(p.Val, p.AnyVal)
}

// EventSet selects process event types. The zero value selects none; use
// AllEvents for a route without an events list.
type EventSet struct {
	mask        cnmsg.What // event bits (fork, exec, …, exit)
	none        bool       // acknowledgements (what == 0)
	nonzeroExit bool       // exit events with a non-zero exit code
	all         bool
}

// AllEvents selects every process event, acknowledgements included.
func AllEvents() EventSet { return EventSet{all: true} }

// ParseEvents parses event names: fork, exec, uid, gid, sid, ptrace, comm,
// coredump, exit, none (acknowledgements), nonzero_exit (exits with a
// non-zero code), all. An empty list selects every event.
func ParseEvents(names []string) (EventSet, error) {
	if len(names) == 0 {
		return AllEvents(), nil
	}
	var s EventSet
	var errs []error
	for _, n := range names {
		switch n {
		case "all":
			s.all = true
			continue
		case "ack":
			n = "none"
		}
		w, ok := cnmsg.ParseWhat(n)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("unknown process event %q", n))
		case w == cnmsg.ProcNone:
			s.none = true
		case w == cnmsg.ProcNonzeroExit:
			s.nonzeroExit = true
		default:
			s.mask |= w
		}
	}
	return s, errors.Join(errs...)
}

// Has reports whether the set selects ev.
func (s EventSet) Has(ev *cnmsg.ProcEvent) bool {
	switch {
	case s.all:
		return true
	case ev.What == cnmsg.ProcNone:
		return s.none
	case ev.What&s.mask == ev.What:
		return true
	case ev.What == cnmsg.ProcExit && s.nonzeroExit:
		return ev.ExitCode != 0
	}
	return false
}

// KernelMask returns the proc_input event_type mask that delivers at least
// the selected events (PROC_EVENT_ALL when acks are selected or all is).
func (s EventSet) KernelMask() cnmsg.What {
	if s.all || s.none {
		return cnmsg.ProcAll
	}
	m := s.mask
	if s.nonzeroExit && m&cnmsg.ProcExit == 0 {
		m |= cnmsg.ProcNonzeroExit
	}
	return m
}

// Route is one compiled routing rule.
type Route struct {
	Match       Pattern
	Events      EventSet // applies to process connector (1.1) messages
	HasEvents   bool     // the route names events: it matches only process events
	Sinks       uint64   // bit i: sink slot i
	LossMarkers bool
	Enrich      bool
	// Ancestors is how many ancestors enriched events carry (0: none).
	Ancestors int
	// NoThreads drops thread events (threads: false): forks that make a
	// thread and exits of a thread that is not its group's leader.
	NoThreads bool
	// Selects is set when the route has a selection stage (where,
	// rate_limit, fold), Stage its index (below MaxStages): what the
	// route matches its stage then decides on, off the reader.
	Selects bool
	Stage   int
}

// MaxStages is how many routes of one table may have a selection stage
// (one bit each in Matched.Stages).
const MaxStages = 64

// Matched is what a table found for one message.
type Matched struct {
	// Sinks are the sinks of every route that matched, each once.
	Sinks uint64
	// ThreadDropped are the sinks of routes that matched but dropped the
	// event as a thread event (threads: false), and no other route took.
	ThreadDropped uint64
	// Direct are the sinks of matching routes without a selection stage:
	// they receive the message whatever the stages decide.
	Direct uint64
	// Stages has bit i set for the matching route with stage i.
	Stages uint64
}

// IsThread reports whether ev is a thread event: a fork whose child is a
// thread (child_pid != child_tgid) or the exit of a thread that is not the
// leader of its group (pid != tgid).
func IsThread(ev *cnmsg.ProcEvent) bool {
	switch ev.What {
	case cnmsg.ProcFork:
		return ev.ChildPID != ev.ChildTGID
	case cnmsg.ProcExit:
		return ev.PID != ev.TGID
	}
	return false
}

// Table is an immutable routing table.
type Table struct {
	routes []Route
}

// New returns a table over routes, which it copies.
func New(routes []Route) *Table {
	return &Table{routes: append([]Route(nil), routes...)}
}

// Routes returns a copy of the table's routes.
func (t *Table) Routes() []Route { return append([]Route(nil), t.routes...) }

// Match returns the sinks that receive a message with id; ev is its decoded
// process event, or nil when it has none. Every sink appears once however
// many routes name it. Zero means the message is unrouted.
func (t *Table) Match(id cnmsg.ID, ev *cnmsg.ProcEvent) (sinks uint64) {
	sinks, _ = t.MatchThreads(id, ev)
	return sinks
}

// MatchThreads is Match that also returns the sinks of routes that matched
// but dropped ev as a thread event (threads: false).
func (t *Table) MatchThreads(id cnmsg.ID, ev *cnmsg.ProcEvent) (sinks, threadDropped uint64) {
	m := t.MatchSelect(id, ev)
	return m.Sinks, m.ThreadDropped
}

// MatchSelect is MatchThreads that also tells which matching routes have
// a selection stage.
func (t *Table) MatchSelect(id cnmsg.ID, ev *cnmsg.ProcEvent) (m Matched) {
	return t.match(id, ev, false)
}

// EnrichSelect is MatchSelect over the routes that ask for enrichment.
func (t *Table) EnrichSelect(id cnmsg.ID, ev *cnmsg.ProcEvent) (m Matched) {
	return t.match(id, ev, true)
}

func (t *Table) match(id cnmsg.ID, ev *cnmsg.ProcEvent, enrichOnly bool) (m Matched) {
	thread := false
	for i := range t.routes {
		r := &t.routes[i]
		if !r.Match.Matches(id) || enrichOnly && !r.Enrich {
			continue
		}
		if r.HasEvents && (ev == nil || !r.Events.Has(ev)) {
			continue
		}
		if r.NoThreads && ev != nil {
			if !thread {
				thread = IsThread(ev)
			}
			if thread {
				m.ThreadDropped |= r.Sinks
				continue
			}
		}
		m.Sinks |= r.Sinks
		if r.Selects {
			m.Stages |= 1 << r.Stage
		} else {
			m.Direct |= r.Sinks
		}
	}
	m.ThreadDropped &^= m.Sinks
	return m
}

// MatchesID reports whether a route matches id, whatever its events: list
// says. A message no route takes but one route's id matches was filtered by
// that route, not left unrouted.
func (t *Table) MatchesID(id cnmsg.ID) bool {
	for i := range t.routes {
		if t.routes[i].Match.Matches(id) {
			return true
		}
	}
	return false
}

// Enrich returns the sinks whose matching route asks for process
// enrichment, and the most ancestors any of those routes asks for.
func (t *Table) Enrich(id cnmsg.ID, ev *cnmsg.ProcEvent) (sinks uint64, ancestors int) {
	for i := range t.routes {
		r := &t.routes[i]
		if !r.Enrich || !r.Match.Matches(id) {
			continue
		}
		if r.HasEvents && (ev == nil || !r.Events.Has(ev)) {
			continue
		}
		if r.NoThreads && ev != nil && IsThread(ev) {
			continue
		}
		sinks |= r.Sinks
		ancestors = max(ancestors, r.Ancestors)
	}
	return sinks, ancestors
}

// LossTargets returns the sinks that receive loss markers for id: those of
// every route matching id with loss markers on, whatever its events.
func (t *Table) LossTargets(id cnmsg.ID) (sinks uint64) {
	for i := range t.routes {
		r := &t.routes[i]
		if r.LossMarkers && r.Match.Matches(id) {
			sinks |= r.Sinks
		}
	}
	return sinks
}
