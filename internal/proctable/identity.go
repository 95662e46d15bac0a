package proctable

import "strconv"

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

// StartTicks converts a fork event's CLOCK_MONOTONIC timestamp to the
// start tick /proc reports, and whether it may be one tick too high.
func (t *Table) StartTicks(monoNs uint64) (ticks uint64, ambiguous bool) {
	b := int64(monoNs) + t.o.BoottimeOffsetNs
	if b < 0 {
		return 0, true
	}
	return uint64(b / t.o.TickNs), b%t.o.TickNs < AmbiguousNs
}

// EntityID returns the id of the process tgid that started at ticks.
func (t *Table) EntityID(tgid uint32, ticks uint64) string { return EntityID(t.o.BootID, tgid, ticks) }

// StartTime returns the wall time (Unix ns) of a start at ticks.
func (t *Table) StartTime(ticks uint64) int64 { return t.o.BootWallNs + int64(ticks)*t.o.TickNs }

func (t *Table) stamp(p *Process) {
	p.EntityID = EntityID(t.o.BootID, p.TGID, p.StartTicks)
	p.StartTime = t.o.BootWallNs + int64(p.StartTicks)*t.o.TickNs
}
