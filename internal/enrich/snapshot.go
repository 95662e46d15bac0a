package enrich

import (
	"context"

	"github.com/cnbridged/cnbridged/internal/proctable"
)

// Why a snapshot of the process table may be incomplete
// (TableSnapshot.Incomplete).
const (
	// IncompleteOff: no route enriches, so the table is not fed.
	IncompleteOff = "off"
	// IncompleteSeeding: the table's /proc scan has not run yet.
	IncompleteSeeding = "seeding"
	// IncompleteResync: events were lost; the resync that reconciles the
	// table with /proc, or the confirmation of the exits it found
	// missing, has not finished.
	IncompleteResync = "resync"
)

// TableSnapshot is the process table at one moment (proctable.Snapshot)
// and how far it can be trusted.
type TableSnapshot struct {
	*proctable.Snapshot
	// Incomplete is "" when the table follows the kernel's events with
	// nothing outstanding, else IncompleteOff, IncompleteSeeding or
	// IncompleteResync.
	Incomplete string
}

// Snapshot returns a snapshot of the process table for the fleet query,
// taken by the enricher between two batches: a copy of pointers to its
// immutable entries, so the enricher is held only for that copy, and the
// caller walks and encodes it on its own goroutine. It is IncompleteOff
// while no route enriches (SetEnabled).
func (e *Enricher) Snapshot(ctx context.Context) (TableSnapshot, error) {
	c := make(chan TableSnapshot, 1)
	select {
	case e.snaps <- c:
	case <-e.done:
		return TableSnapshot{}, ErrStopped
	case <-ctx.Done():
		return TableSnapshot{}, ctx.Err()
	}
	var s TableSnapshot
	select {
	case s = <-c:
	case <-ctx.Done():
		return TableSnapshot{}, ctx.Err()
	}
	if !e.enabled.Load() {
		s.Incomplete = IncompleteOff
	}
	return s, nil
}

// snapshot copies the table. Called on the enricher goroutine.
func (e *Enricher) snapshot() TableSnapshot {
	s := TableSnapshot{Snapshot: e.table.Snapshot()}
	switch {
	case e.reseed.Load():
		s.Incomplete = IncompleteSeeding
	case e.resync.Load() || len(e.absent) > 0 || e.scanLive != nil:
		s.Incomplete = IncompleteResync
	}
	return s
}
