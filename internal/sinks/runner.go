package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
)

// WhenFull is a queue's policy when it has no room for a batch.
type WhenFull int

const (
	// DropNewest drops the incoming records and counts them: the kernel
	// reader never waits.
	DropNewest WhenFull = iota
	// Block makes the kernel reader wait for room. The kernel then drops
	// messages at the socket instead, which the overrun counters report.
	Block
)

// ParseWhenFull maps the config value to a policy.
func ParseWhenFull(s string) (WhenFull, error) {
	switch s {
	case "drop_newest", "":
		return DropNewest, nil
	case "block":
		return Block, nil
	}
	return 0, fmt.Errorf("when_full %q is not drop_newest or block", s)
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Name          string
	Slot          int // the sink's bit in event.Record.Targets, fixed for its life
	QueueSize     int // records
	QueueMaxBytes int
	WhenFull      WhenFull
	FlushInterval time.Duration // at most this long between flushes under load
}

// Runner owns one sink: its bounded queue and the goroutine that feeds it.
type Runner struct {
	cfg      RunnerConfig
	sink     Sink
	q        *queue
	counters *Counters
	log      *zap.Logger
	plain    event.Record // a record without enrichment, for Write
	// unwritten counts the records of the batch being delivered that
	// Write has not yet returned for (the queue no longer holds them).
	unwritten atomic.Int64
	done      atomic.Bool // Run has returned
}

// NewRunner wraps sink with a queue.
func NewRunner(cfg RunnerConfig, sink Sink, m *Metrics, log *zap.Logger) *Runner {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	r := &Runner{
		cfg:      cfg,
		sink:     sink,
		q:        newQueue(cfg.QueueSize, cfg.QueueMaxBytes),
		counters: m.Counters(cfg.Name),
		log:      log.Named("sink").With(zap.String("sink", cfg.Name)),
	}
	m.queueCap.WithLabelValues(cfg.Name).Set(float64(cfg.QueueSize))
	m.queueLen.set(cfg.Name, r.waiting)
	return r
}

// Name returns the sink's name.
func (r *Runner) Name() string { return r.cfg.Name }

// Sink returns the wrapped sink.
func (r *Runner) Sink() Sink { return r.sink }

// Counters returns the sink's outcome counters.
func (r *Runner) Counters() *Counters { return r.counters }

// Offer hands the records of b whose Targets have the sink's bit to the sink. It
// takes a reference on b when the batch is queued. It never blocks under
// DropNewest; records that don't fit are counted as dropped (queue_full),
// and records offered once the runner is stopping (Stop, or its context
// ended while Offer waited under Block) as dropped (shutdown).
func (r *Runner) Offer(b *event.Batch) {
	n := b.Count(r.Bit())
	if n == 0 {
		return
	}
	b.Retain(1)
	switch r.q.push(queued{b: b, count: n, bytes: b.Bytes()}, r.cfg.WhenFull == Block) {
	case pushFull:
		b.Release()
		r.counters.Drop(DropQueueFull, n)
	case pushClosed:
		b.Release()
		r.counters.Drop(DropShutdown, n)
	}
}

// Ready reports whether the sink can publish.
func (r *Runner) Ready() error {
	if rd, ok := r.sink.(Readier); ok {
		return rd.Ready()
	}
	return nil
}

// QueueLength returns the records waiting.
func (r *Runner) QueueLength() int { return r.q.length() }

// waiting returns the records waiting for the sink: in the queue, and held
// by the sink without an outcome (see Pender). It does not wait for a
// blocked Write.
func (r *Runner) waiting() int {
	n := r.q.length() + int(r.unwritten.Load())
	if p, ok := r.sink.(Pender); ok {
		n += p.Pending()
	}
	return n
}

// Stop closes the queue: Offer drops from now on and Run returns once it
// has delivered what the queue holds.
func (r *Runner) Stop() { r.q.close() }

// Run feeds the sink until Stop has been called and the queue is drained,
// then closes the sink. When ctx ends first, what is still queued is
// counted as dropped (reason shutdown) and the sink is closed at once.
// A sink error that means it cannot go on ends Run with that error.
func (r *Runner) Run(ctx context.Context) error {
	defer r.done.Store(true)
	lastFlush := time.Now()
	stop := context.AfterFunc(ctx, r.q.close)
	defer stop()
	var runErr error
	for {
		it, ok := r.q.pop()
		if !ok {
			break
		}
		if ctx.Err() != nil {
			r.counters.Drop(DropShutdown, it.count)
			it.b.Release()
			continue
		}
		if err := r.deliver(it); err != nil {
			runErr = err
			r.q.close()
			r.drainDropped()
			break
		}
		if r.q.length() == 0 || time.Since(lastFlush) >= r.cfg.FlushInterval {
			if err := r.sink.Flush(ctx); err != nil {
				runErr = err
				r.q.close()
				r.drainDropped()
				break
			}
			lastFlush = time.Now()
		}
	}
	closeCtx := ctx
	if ctx.Err() != nil {
		// Still give the sink a moment to count what it holds.
		var cancel context.CancelFunc
		closeCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 100*time.Millisecond)
		defer cancel()
	}
	if err := r.sink.Close(closeCtx); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return fmt.Errorf("sink %s: %w", r.cfg.Name, runErr)
	}
	return nil
}

// Slot returns the sink's slot.
func (r *Runner) Slot() int { return r.cfg.Slot }

// Bit returns the sink's bit in event.Record.Targets.
func (r *Runner) Bit() uint64 { return 1 << r.cfg.Slot }

func (r *Runner) deliver(it queued) error {
	defer it.b.Release()
	r.unwritten.Store(int64(it.count))
	defer r.unwritten.Store(0)
	bit := r.Bit()
	recs := it.b.Records
	// Only a sink whose routes asked for enrichment, or select what they
	// send (where, rate_limit, fold), waits for the enricher.
	for i := range recs {
		if recs[i].Targets&bit != 0 && (recs[i].EnrichTargets|recs[i].SelectTargets)&bit != 0 {
			it.b.WaitEnriched()
			break
		}
	}
	for i := range recs {
		if recs[i].Targets&bit == 0 {
			continue
		}
		rec := &recs[i]
		if rec.SelectTargets&bit != 0 && rec.Unselected&bit != 0 {
			// None of the sink's routes that matched it selected it.
			r.unwritten.Add(-1)
			continue
		}
		if rec.EnrichTargets != 0 && rec.EnrichTargets&bit == 0 {
			// Enriched for other sinks, maybe still being: encode
			// without it, reading none of what the enricher writes.
			r.plain = rec.Plain()
			rec = &r.plain
		}
		err := r.sink.Write(rec)
		r.unwritten.Add(-1)
		if err != nil {
			// The sink cannot go on: this and the rest of the batch are lost.
			rest := 0
			for j := i + 1; j < len(recs); j++ {
				if recs[j].Targets&bit != 0 && (recs[j].SelectTargets&bit == 0 || recs[j].Unselected&bit == 0) {
					rest++
				}
			}
			r.counters.Drop(DropShutdown, rest)
			return err
		}
	}
	return nil
}

// Abandon is for a runner whose sink is stuck (a write that does not
// return) after its context ended and the daemon will not wait any longer:
// what is queued is counted as dropped (shutdown), the batch being written
// as failed (those not yet handed to Write; what a stuck sink buffered is
// not counted). It returns the records so counted.
func (r *Runner) Abandon() int {
	if r.done.Load() {
		return 0
	}
	r.q.close()
	n := r.q.length()
	r.drainDropped()
	if k := r.unwritten.Swap(0); k > 0 {
		r.counters.Fail(FailAbandoned, int(k))
		n += int(k)
	}
	return n
}

func (r *Runner) drainDropped() {
	for {
		it, ok := r.q.tryPop()
		if !ok {
			return
		}
		r.counters.Drop(DropShutdown, it.count)
		it.b.Release()
	}
}

// ErrFatal wraps sink errors after which the daemon must exit.
var ErrFatal = errors.New("sink cannot continue")
