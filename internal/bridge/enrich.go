package bridge

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
)

// EnrichOptions configure the enrichment stage.
type EnrichOptions struct {
	MaxCmdline int // bytes of /proc/<pid>/cmdline kept
	CacheSize  int // pids remembered from fork/exec, for exit events
	QueueSize  int // batches waiting for the enricher
	ProcRoot   string
}

// enricher reads /proc for process events on routes with enrich: true. It
// runs on its own goroutine, off the kernel reader's path: the reader hands
// it whole batches (after queueing them for their sinks, which wait for
// the batch's enrichment before reading it), so sink order is kept. When
// its queue is full the batch goes out unenriched and that is counted.
type enricher struct {
	q      chan *event.Batch
	reader procinfo.Reader
	cache  *procinfo.Cache
	log    *zap.Logger

	results      *prometheus.CounterVec
	ok, gone     prometheus.Counter
	cached, errs prometheus.Counter
	skipped      prometheus.Counter
	cacheLen     atomic.Int64 // the cache's size, for other goroutines
	lastErrLog   time.Time
}

func newEnricher(o EnrichOptions, reg prometheus.Registerer, log *zap.Logger) *enricher {
	if o.QueueSize < 1 {
		o.QueueSize = 1024
	}
	e := &enricher{
		q:      make(chan *event.Batch, o.QueueSize),
		reader: procinfo.Reader{Root: o.ProcRoot, MaxCmdline: o.MaxCmdline},
		cache:  procinfo.NewCache(o.CacheSize),
		log:    log.Named("enrich"),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_enrich_total",
			Help: "Process events enriched from /proc, by result: ok (read now), cached (exit: from the fork/exec cache), gone (the process had already gone), error, skipped (the enricher was too far behind: sent without enrichment).",
		}, []string{"result"}),
	}
	e.ok = e.results.WithLabelValues("ok")
	e.gone = e.results.WithLabelValues("gone")
	e.cached = e.results.WithLabelValues("cached")
	e.errs = e.results.WithLabelValues("error")
	e.skipped = e.results.WithLabelValues("skipped")
	reg.MustRegister(e.results, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cnbridged_enrich_queue_length",
		Help: "Batches waiting for the enricher.",
	}, func() float64 { return float64(len(e.q)) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cnbridged_enrich_cache_entries",
		Help: "Processes remembered from fork/exec for enriching their exit (bounded by enrich_cache_size).",
	}, func() float64 { return float64(e.cacheLen.Load()) }))
	return e
}

// offer hands b to the enricher, or marks its pending records skipped
// when the enricher's queue is full. Called on the reader goroutine.
func (e *enricher) offer(b *event.Batch) {
	b.Retain(1)
	b.StartEnrich()
	select {
	case e.q <- b:
	default:
		e.skipBatch(b)
	}
}

// run enriches batches until ctx ends, then marks what is left skipped.
func (e *enricher) run(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case b := <-e.q:
			e.enrichBatch(b)
		case <-ctx.Done():
		}
	}
	for {
		select {
		case b := <-e.q:
			e.skipBatch(b)
		default:
			return
		}
	}
}

func (e *enricher) skipBatch(b *event.Batch) {
	for i := range b.Records {
		if b.Records[i].Enrich == event.EnrichPending {
			b.Records[i].Enrich = event.EnrichSkipped
			e.skipped.Inc()
		}
	}
	b.EnrichDone()
	b.Release()
}

func (e *enricher) enrichBatch(b *event.Batch) {
	for i := range b.Records {
		r := &b.Records[i]
		if r.Enrich == event.EnrichPending {
			e.enrich(r)
		}
	}
	e.cacheLen.Store(int64(e.cache.Len()))
	b.EnrichDone()
	b.Release()
}

// enrich fills r.Process: for fork the child's, for exit what the cache
// kept from fork or exec (the process is a zombie or gone by then), for
// the rest the process's own.
func (e *enricher) enrich(r *event.Record) {
	ev := &r.Proc
	var info procinfo.Info
	switch ev.What {
	case cnmsg.ProcExit:
		if in, ok := e.cache.Get(ev.PID); ok {
			e.cache.Forget(ev.PID)
			e.cached.Inc()
			r.Process, r.Enrich = &in, event.EnrichDone
			return
		}
		var ok bool
		if info, ok = e.read(r, ev.PID); !ok {
			return
		}
	case cnmsg.ProcFork:
		var ok bool
		if info, ok = e.read(r, ev.ChildPID); !ok {
			return
		}
		if !info.Gone {
			e.cache.Put(ev.ChildPID, info)
		}
	default:
		var ok bool
		if info, ok = e.read(r, ev.PID); !ok {
			return
		}
		if !info.Gone {
			e.cache.Put(ev.PID, info)
		}
	}
	r.Process, r.Enrich = &info, event.EnrichDone
}

func (e *enricher) read(r *event.Record, pid uint32) (procinfo.Info, bool) {
	info, err := e.reader.Read(pid)
	switch {
	case err != nil:
		e.errs.Inc()
		r.Enrich = event.EnrichSkipped
		if now := time.Now(); now.Sub(e.lastErrLog) > time.Minute {
			e.lastErrLog = now
			e.log.Warn("reading /proc failed (logged at most once a minute)", zap.Uint32("pid", pid), zap.Error(err))
		}
		return info, false
	case info.Gone:
		e.gone.Inc()
	default:
		e.ok.Inc()
	}
	return info, true
}
