package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/selection"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// Plan is what a config decides for the path: swapped whole on reload.
type Plan struct {
	Table *router.Table
	// Sinks by slot: Sinks[i] owns bit i of event.Record.Targets.
	Sinks []Target
	// Trusted are the ids userspace (non-kernel) senders may use.
	Trusted []router.Pattern
	// ProcFiltered is set when the kernel filters process events for this
	// socket: it numbers events before filtering, so process connector seq
	// gaps are then not loss and are not counted.
	ProcFiltered bool
	// UserFilter, when set, drops process events it does not select: the
	// fallback for kernels without per-socket filtering (before 6.6).
	UserFilter *router.EventSet
	// Enrich is set when any route asks for process enrichment.
	Enrich bool
	// Replies, when set, sees every kernel message first: replies to
	// connector requests sent from NATS.
	Replies ReplyMatcher
	// Stages are the selection stages of the routes that have one (where,
	// rate_limit, fold), by router.Route.Stage. They run on the enricher
	// goroutine, which owns their state.
	Stages []*Stage
	// Tap is the tap's bit (0: no tap): it gets every routed record,
	// whatever the stages decide, and what they add.
	Tap uint64
	// Encoder gives the stages each record's fields, as its line has them.
	Encoder *event.Encoder
	// selecting runs Stages on the enricher goroutine (nil without
	// stages); set by the selector's declare before the plan is used.
	selecting enrich.Stages
}

// Stage is one route's selection stage in a plan.
type Stage struct {
	Route  int    // the route's index in the config
	Sinks  uint64 // the route's sinks: what the stage adds goes to them
	Enrich bool   // the route's records are enriched (its where sees process…)
	Sel    *selection.Route
	// published are Sel's counts already added to the metrics (by the
	// enricher goroutine, which owns the stage).
	published selection.Counts
	counters  *stageCounters
}

// planStages are a plan's stages as the enricher runs them
// (enrich.Stages): after each batch the reader routed with the plan.
type planStages struct {
	sel *selector
	p   *Plan
}

func (s *planStages) Select(b *event.Batch) { s.sel.batch(b, s.p) }

// Target is where the bridge hands batches: a sink's queue
// (*sinks.Runner). Offer takes its own reference on b when it keeps it,
// never blocks under the drop policy and counts what it does not take.
type Target interface {
	Offer(b *event.Batch)
}

// SeqRecorder keeps the last seq read from each kernel stream where a
// restarted daemon finds it (statefile.Seqs). Set runs on the reader
// goroutine for every kernel message that moves its stream forward.
type SeqRecorder interface {
	Set(idx, val, cpu, seq uint32)
}

// SetPlan swaps in a new plan. Batches started from now on use it; a batch
// the reader is handling may still be on its way with the old one (see
// Release).
func (b *Bridge) SetPlan(p *Plan) (old *Plan) {
	b.enr.SetEnabled(p.Enrich)
	b.sel.declare(p)
	return b.plan.Swap(p)
}

// Release waits until no batch is being handled with old, so that the
// sinks only old refers to can be retired without a batch reaching them
// afterwards. It returns ctx's error when ctx ends first: the reader is
// then stuck handing a batch to a full sink with when_full: block, and the
// caller retires anyway (stopping that sink's queue frees the reader; what
// it did not take is counted, reason shutdown).
func (b *Bridge) Release(ctx context.Context, old *Plan) error {
	for b.active.Load() == old {
		select {
		case <-b.idle:
		case <-ctx.Done():
			if b.active.Load() != old {
				return nil
			}
			return ctx.Err()
		}
	}
	return nil
}

// acquire returns the current plan, published as the active one. The
// re-check closes the window between loading and publishing: a SetPlan in
// it is seen and the new plan is taken instead, so Release never misses a
// batch that uses the old plan.
func (b *Bridge) acquire() *Plan {
	for {
		p := b.plan.Load()
		b.active.Store(p)
		if b.plan.Load() == p {
			return p
		}
	}
}

// release ends the reader's use of its plan.
func (b *Bridge) release() {
	b.active.Store(nil)
	select {
	case b.idle <- struct{}{}:
	default:
	}
}

// RecordSeqs makes the reader keep the last seq of every kernel stream in
// r. Call it before the reader starts.
func (b *Bridge) RecordSeqs(r SeqRecorder) { b.seqs = r }

// KernelStream is the last seq a previous daemon read from one kernel
// stream.
type KernelStream struct {
	ID  cnmsg.ID
	CPU uint32
	Seq uint32
}

// Resume continues a previous daemon's accounting, before the reader
// starts: each kernel stream's ledger starts from the seq it read last, so
// the seqs the kernel numbered while nobody listened are counted lost
// exactly (loss markers included, cnbridged_messages_lost_total with
// when="not_listening") when the stream is next seen; and gap,
// when set, goes to the sinks of the routes with loss markers for process
// events.
func (b *Bridge) Resume(streams []KernelStream, gap *event.Gap, now time.Time) {
	for _, s := range streams {
		b.ledger.Observe(seqtrack.Key{Idx: s.ID.Idx, Val: s.ID.Val, CPU: s.CPU}, s.Seq)
		b.m.restart.resumed(seqtrack.Key{Idx: s.ID.Idx, Val: s.ID.Val, CPU: s.CPU})
		if b.seqs != nil {
			b.seqs.Set(s.ID.Idx, s.ID.Val, s.CPU, s.Seq)
		}
	}
	if gap == nil {
		return
	}
	p := b.plan.Load()
	proc := cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}
	t := p.Table.LossTargets(proc)
	if t == 0 {
		return
	}
	r := event.Record{Kind: event.KindGap, Time: now.UnixNano(), Targets: t, Gap: gap}
	r.Msg.ID = proc
	batch := b.pool.Get()
	batch.Add(&r)
	b.dispatch(p, batch, t)
}

// Plan returns the current plan.
func (b *Bridge) Plan() *Plan { return b.plan.Load() }

// FlushStages empties old's selection stages (open lives, pending
// suppression counts) into old's sinks, after every batch the reader
// routed with old: call it once the reader is done with old (Release) and
// before retiring old's sinks. It returns once those records are offered,
// or with ctx's error when ctx ends first.
func (b *Bridge) FlushStages(ctx context.Context, old *Plan) error {
	if old == nil || old.Stages == nil {
		return nil
	}
	done := make(chan struct{})
	err := b.enr.Do(ctx, func() { b.sel.flush(old, done, time.Now()) })
	switch {
	case errors.Is(err, enrich.ErrStopped):
		return nil // its stop flushed every plan
	case err != nil:
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
