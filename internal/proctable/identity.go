package proctable

import (
	"strconv"
	"strings"

	"github.com/cnbridged/cnbridged/internal/proc"
)

// AmbiguousNs is how long after a clock tick boundary a fork timestamp may
// belong to the tick before it (the delay between the kernel stamping a
// task's start and sending its fork event, with margin).
const AmbiguousNs = 500_000

// EntityID returns the id of the process with tgid that started at ticks.
func EntityID(bootID string, tgid uint32, ticks uint64) string {
	b := make([]byte, 0, len(bootID)+24)
	b = append(b, bootID...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(tgid), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, ticks, 10)
	return string(b)
}

// parseEntityID splits an entity id into its boot id, tgid and start tick.
func parseEntityID(id string) (boot string, tgid uint32, ticks uint64, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return "", 0, 0, false
	}
	j := strings.LastIndexByte(id[:i], ':')
	if j < 0 {
		return "", 0, 0, false
	}
	t, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	g, err := strconv.ParseUint(id[j+1:i], 10, 32)
	if err != nil {
		return "", 0, 0, false
	}
	return id[:j], uint32(g), t, true
}

// StartTicks converts a fork event's CLOCK_MONOTONIC timestamp to the
// start tick /proc reports, and whether it may be one tick too high.
func (t *Table) StartTicks(monoNs uint64) (ticks uint64, ambiguous bool) {
	b := int64(monoNs) + t.o.BoottimeOffsetNs
	if b < 0 {
		return 0, true
	}
	return uint64(b / proc.TickNs), b%proc.TickNs < AmbiguousNs
}

// EntityID returns the id of the process tgid that started at ticks.
func (t *Table) EntityID(tgid uint32, ticks uint64) string { return EntityID(t.o.BootID, tgid, ticks) }

// StartTime returns the wall time (Unix ns) of a start at ticks.
func (t *Table) StartTime(ticks uint64) int64 { return t.o.BootWallNs + int64(ticks)*proc.TickNs }

func (t *Table) stamp(p *Process) {
	p.EntityID = EntityID(t.o.BootID, p.TGID, p.StartTicks)
	p.StartTime = t.o.BootWallNs + int64(p.StartTicks)*proc.TickNs
}

// life is what a record of a pid says about which process it is: its
// start tick, and how the tick was learnt: from a fork event (forkNs, its
// CLOCK_MONOTONIC timestamp) or from a /proc read (readNs, when the read
// began; 0 if unknown).
type life struct {
	ticks, forkNs, readNs uint64
}

func lifeOf(p *Process) life { return life{ticks: p.StartTicks, forkNs: p.ForkNs, readNs: p.SeenNs} }

func lifeRead(o *Observed) life { return life{ticks: o.StartTicks, readNs: o.ReadNs} }

// sameLife is the table's one rule for "the same process": whether two
// records of one pid describe one process. Fork, Seed, Resync and Confirm
// all decide by it.
//
//   - Both seen forking: the same fork event (its timestamp).
//   - Both read from /proc: the same start tick.
//   - One seen forking (tick d, derived from the event's timestamp), one
//     read (tick r): the kernel stamps the start before it sends the fork
//     event, so d is never below the true start; it is above it by the
//     event's delay, one tick when the event falls just after a tick
//     boundary (AmbiguousNs) and more when the kernel was slow to send it
//     (under load). So r > d is a later process (it started after the
//     event). r <= d is the forked process when the read began after the
//     event (no other process can hold the pid then with a start before
//     it); when the read began before the event (or when is unknown), the
//     pid may have been freed and taken by the fork after the read, so
//     only the one tick the event may lag is the same process.
//
// A pid taken again within the same clock tick is not told apart (10 ms;
// pid reuse cycles through pid_max first).
func sameLife(a, b life) bool {
	switch {
	case a.forkNs != 0 && b.forkNs != 0:
		return a.forkNs == b.forkNs
	case a.forkNs != 0:
		return forkedIs(a, b)
	case b.forkNs != 0:
		return forkedIs(b, a)
	}
	return a.ticks == b.ticks
}

// forkedIs reports whether f, seen forking, is the process read as r.
func forkedIs(f, r life) bool {
	if r.ticks > f.ticks {
		return false
	}
	return r.readNs != 0 && r.readNs >= f.forkNs || f.ticks-r.ticks <= 1
}

// startedAfter reports whether a certainly started after b: more than the
// one tick a fork-derived start may be too high. A process that started
// after another is never its parent or ancestor.
func startedAfter(a, b *Process) bool { return a.StartTicks > b.StartTicks+1 }
