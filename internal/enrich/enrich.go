// Package enrich is the enrichment stage: it keeps the process table and
// describes process events from it (the process, its parent and
// ancestors) for the sinks of the routes that enrich.
//
// The Enricher runs on its own goroutine (Run), off the kernel reader's
// path. The reader hands it (Offer), in order, every batch with process
// events while any route enriches, through a bounded queue
// (Options.QueueSize batches): the table must see every event, so a full
// queue makes the reader wait; the enricher keeps it short by describing
// execs from the table once it is half full (result backlog). On its
// goroutine it applies the events to the table, reads /proc for what the
// table does not know, reconciles the table with /proc after loss
// (resync; exit_lost records, which the reader takes with TakeLost) and
// answers copies of the table (Snapshot for the fleet query, TableView
// for /debug/proctable). After a batch's enrichment it runs the route
// selection stages of the plan the batch was routed with (Stages, and
// Selector to tick and stop them: they live in bridge, with the routes
// and sinks they are about); a batch may come for the stages alone
// (Offer's enrich false: no route enriches).
//
// On the reader's goroutine, the Capturer reads each exec's new image
// from /proc as the reader receives the event, before the process can
// end, within a time budget per batch.
package enrich

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/ratelog"
)

// Options configure the enrichment stage.
type Options struct {
	MaxCmdline int // bytes of /proc/<pid>/cmdline kept
	MaxEntries int // process_table.max_entries
	QueueSize  int // batches waiting for the enricher
	ProcRoot   string
	PasswdPath string // empty: /etc/passwd
	// Redact are the enrich_redact patterns: in every argument, each
	// pattern's first capture group is replaced by "*****".
	Redact []*regexp.Regexp
	// ExecReaders is how many goroutines may read /proc for the execs of
	// one batch at once (process_table.exec_readers); below 1, one.
	ExecReaders int
	// CaptureBudget is how long the kernel reader may spend reading /proc
	// for the execs of one batch as it receives them
	// (process_table.capture_budget); 0 reads nothing there.
	CaptureBudget time.Duration
	// NoSeed skips the /proc scan at start (tests with a fake proc root).
	NoSeed bool
}

// execSlots is the size of the exec counters shared by the reader and the
// enricher (see Enricher.execSeen).
const execSlots = 4096

// Enricher keeps the process table and describes process events from it,
// on its own goroutine (Run), off the kernel reader's path. The reader
// hands it (Offer), in order, every batch with process events while any
// route enriches (just before offering the batch to its sinks; sinks of
// enriching routes wait for the batch's enrichment before reading it, the
// others don't). Records no enriching sink receives still update the
// table (event.EnrichTable).
//
// The table is read and written only on the enricher goroutine. An exec's
// new image is read by the reader as it receives the event (Capturer);
// the enricher reads /proc for what that capture left (see exec), for a
// process the table does not know, and for the start tick of a fork that
// lands just after a clock tick (see proctable).
type Enricher struct {
	q      chan item
	o      Options
	reader procinfo.Reader
	users  procinfo.Users
	table  *proctable.Table
	log    *zap.Logger

	// execSeen counts, by pid % execSlots, the exec events the reader has
	// received; execDone the ones the enricher has applied. An exec whose
	// /proc read finds execSeen ahead of execDone has a later exec of the
	// same pid (or one sharing its slot) already received: the read may
	// show that later image, so it is marked stale. So is a read that
	// finds an image without arguments: a later exec in progress. What
	// neither catches is a later exec that completed in the microseconds
	// between the read and the reader receiving its event.
	execSeen [execSlots]atomic.Uint32
	execDone [execSlots]uint32
	// overtaken returns, for an exec the reader captured, the count to
	// compare with its Capture.Overtaken (the capturer's): a captured
	// read is stale only if an exec stamped before it ended came later.
	overtaken func(pid uint32) uint32

	// seenTs is the highest kernel timestamp the reader has handled;
	// emptyAt, when set, tells when the reader last found the socket
	// empty (listener.Listener.EmptyAt); live is set once a reader feeds
	// the enricher (see waitReader).
	seenTs  atomic.Uint64
	emptyAt atomic.Pointer[func() time.Time]
	live    atomic.Bool
	clock   monoClock
	// pre holds readLate's reads in record order; nextPre is the next one
	// exec uses, cur the record being applied and capture its Capture.
	pre     []preRead
	nextPre int
	cur     int
	capture *event.Capture
	// forked maps the processes forked in the batch readLate reads to
	// their parents.
	forked map[uint32]uint32
	// extra are the Readers of readLate's goroutines besides the
	// enricher's own (reader): ExecReaders - 1 of them.
	extra []*procinfo.Reader
	// fieldNames holds the names of each set of exec fields.
	fieldNames [procinfo.ExecFields + 1][]string

	// reseed is set by the reader when a plan turns enrichment on
	// (Reseed): the enricher starts a new table from a /proc scan before
	// its next batch. enabled tells whether the plan in force enriches
	// (SetEnabled).
	reseed  atomic.Bool
	enabled atomic.Bool
	// cap is the reader's Capturer.
	cap *Capturer
	// done is closed when Run returns.
	done chan struct{}
	// views carries TableView requests to the enricher goroutine; snaps,
	// Snapshot requests.
	views chan chan TableView
	snaps chan chan TableSnapshot

	// resync is set by the reader when events may have been lost (Resync); the
	// enricher reconciles the table with /proc before its next batch.
	resync atomic.Bool
	// lost holds exit_lost processes for the reader to emit; wake, when
	// set, has the reader come for them even if no kernel message comes.
	lostMu sync.Mutex
	lost   []*proctable.Process
	nLost  atomic.Int32
	wake   atomic.Pointer[func()]
	off    int64     // CLOCK_BOOTTIME - CLOCK_MONOTONIC
	offAt  time.Time // when off was measured

	results                *prometheus.CounterVec
	fromTable, read, gone  prometheus.Counter
	errs, skipped, backlog prometheus.Counter
	startReads             prometheus.Counter
	execBursts             prometheus.Counter
	resyncs, exitLost      prometheus.Counter
	seeded                 prometheus.Counter
	tableLen, tableEvicted atomic.Int64
	tableExited            atomic.Int64
	errLog                 *ratelog.Limiter
	counted                int       // results counted so far (see apply)
	lastResync             time.Time // see enrichBatch
	// absent are processes the last resync found gone from /proc, not yet
	// confirmed lost (see confirmLost); absentAt is the scan's
	// CLOCK_MONOTONIC time when it ended.
	absent      []*proctable.Process
	absentAt    int64
	absentSince time.Time
	// scanLive holds the pids the last resync's scan listed, until every
	// event stamped before the scan has been applied (see confirmLost);
	// scanAt is when the scan began (CLOCK_MONOTONIC). A fork stamped
	// before it whose child the scan did not list is of a process that
	// had ended by then: an event the enricher was still behind on.
	scanLive map[uint32]struct{}
	scanAt   int64
	// appliedTs is the highest kernel timestamp the enricher has applied
	// to the table.
	appliedTs uint64
	// selector ticks and stops the selection stages (SetSelector).
	selector Selector
}

func New(o Options, reg prometheus.Registerer, log *zap.Logger) *Enricher {
	if o.QueueSize < 1 {
		o.QueueSize = 1024
	}
	e := &Enricher{
		q:      make(chan item, o.QueueSize),
		done:   make(chan struct{}),
		views:  make(chan chan TableView),
		snaps:  make(chan chan TableSnapshot),
		o:      o,
		reader: procinfo.Reader{Root: o.ProcRoot, MaxCmdline: o.MaxCmdline},
		users:  procinfo.Users{Path: o.PasswdPath},
		log:    log.Named("enrich"),
		errLog: ratelog.New(time.Minute, 1),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_enrich_total",
			Help: "Process events enriched, by result: table (described from the process table, no /proc read), read (the table read /proc: exec, or a process it did not know), gone (unknown to the table and gone from /proc), error, backlog (exec described from the table without reading /proc because the enricher was behind), skipped (not enriched: the daemon was stopping).",
		}, []string{"result"}),
	}
	for range o.ExecReaders - 1 {
		e.extra = append(e.extra, &procinfo.Reader{Root: o.ProcRoot, MaxCmdline: o.MaxCmdline})
	}
	e.forked = make(map[uint32]uint32)
	e.clock = newMonoClock()
	e.fieldNames = fieldNameSets()
	e.fromTable = e.results.WithLabelValues("table")
	e.read = e.results.WithLabelValues("read")
	e.gone = e.results.WithLabelValues("gone")
	e.errs = e.results.WithLabelValues("error")
	e.skipped = e.results.WithLabelValues("skipped")
	e.backlog = e.results.WithLabelValues("backlog")
	e.startReads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_proctable_start_reads_total",
		Help: "Forks whose start tick was read from /proc/<pid>/stat because the event's timestamp fell just after a clock tick.",
	})
	e.execBursts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_enrich_exec_bursts_total",
		Help: "Batches whose execs were read from /proc by more than one goroutine (process_table.exec_readers).",
	})
	e.resyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_proctable_resyncs_total",
		Help: "Reconciliations of the process table with a /proc scan after loss.",
	})
	e.exitLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_proctable_exit_lost_total",
		Help: "Processes found gone by a resync: their exit event was lost (emitted as exit_lost records).",
	})
	e.seeded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_proctable_seeded_total",
		Help: "Processes added to the table from a /proc scan (at start and by resyncs).",
	})
	reg.MustRegister(e.results, e.startReads, e.execBursts, e.resyncs, e.exitLost, e.seeded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cnbridged_enrich_queue_length",
			Help: "Batches waiting for the enricher.",
		}, func() float64 { return float64(len(e.q)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cnbridged_proctable_entries",
			Help: "Processes and threads in the process table (bounded by process_table.max_entries).",
		}, func() float64 { return float64(e.tableLen.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cnbridged_proctable_evictions_total",
			Help: "Processes evicted from the table by its bound (least recently used first).",
		}, func() float64 { return float64(e.tableEvicted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cnbridged_proctable_exited_entries",
			Help: "Exited processes the table remembers for the lineage of the others (parent and ancestors marked exited; bounded, see README).",
		}, func() float64 { return float64(e.tableExited.Load()) }))
	e.table = proctable.New(e.tableOptions())
	e.cap = newCapturer(o, reg, &e.execSeen)
	e.overtaken = e.cap.overtakenOf
	return e
}

// item is what the enricher's queue carries: a batch, whether to enrich
// it and the selection stages to run on it then (nil: none); or (do set)
// a function to run in the queue's order (Do).
type item struct {
	b      *event.Batch
	enrich bool
	stages Stages
	do     func()
}

// Stages are the route selection stages (where, rate_limit, fold) of the
// plan the reader routed a batch with: from what enrichment found, they
// decide what the sinks of selecting routes receive. The enricher runs
// them on its goroutine after the batch's enrichment, in the queue's
// order; they live with the routes and sinks they are about (bridge).
type Stages interface {
	// Select runs b's records through the stages, once they are
	// enriched (or marked skipped: the daemon is stopping).
	Select(b *event.Batch)
}

// Selector is what the enricher ticks and stops, on its goroutine, for
// the stages of every plan (bridge's). Set it before Run (SetSelector).
type Selector interface {
	// Tick is called every 250 ms, between batches.
	Tick(now time.Time)
	// Stop is called once as Run ends, after the last batch and Do: the
	// reader has stopped.
	Stop(now time.Time)
}

// ErrStopped is the error of the requests made to the enricher once it
// has stopped.
var ErrStopped = errors.New("the enrichment stage has stopped")

func (e *Enricher) tableOptions() proctable.Options {
	o := proctable.Options{MaxEntries: e.o.MaxEntries}
	if id, err := procinfo.BootID(e.o.ProcRoot); err == nil {
		o.BootID = id
	} else {
		e.log.Warn("reading the boot id; entity ids will lack it", zap.Error(err))
	}
	if off, wall, err := procinfo.Clocks(); err == nil {
		o.BoottimeOffsetNs, o.BootWallNs = off, wall
		e.off, e.offAt = off, time.Now()
	}
	return o
}

// Capturer returns the capturer the reader calls for each exec event it
// receives while a route enriches (there is one: it serves one reader
// goroutine).
func (e *Enricher) Capturer() *Capturer { return e.cap }

// SetWake gives the enricher a way to have the reader run its handler
// when the socket is quiet (listener.Listener.Wake): exit_lost records it
// finds go out then instead of waiting for the next kernel message. Safe
// to call while the enricher runs.
func (e *Enricher) SetWake(f func()) { e.wake.Store(&f) }

// SetEmptyAt tells the enricher how to learn when the reader last found
// the socket empty (listener.Listener.EmptyAt), having handled everything
// it received before: how it knows, on a quiet host, that no later exec
// of a pid is still on its way (see waitReader). Safe to call while the
// enricher runs.
func (e *Enricher) SetEmptyAt(f func() time.Time) { e.emptyAt.Store(&f) }

// WakeReader has the reader run its handler now, if SetWake gave a way:
// for what the enricher, or the selection stages, hand it.
func (e *Enricher) WakeReader() {
	if w := e.wake.Load(); w != nil {
		(*w)()
	}
}

// SetEnabled tells whether the plan in force has a route that enriches:
// the table is fed only then (Snapshot says IncompleteOff otherwise). Safe
// from any goroutine.
func (e *Enricher) SetEnabled(on bool) { e.enabled.Store(on) }

// Reseed has the enricher start a new table from a /proc scan before its
// next batch (or as Run starts): the reader calls it when a plan turns
// enrichment on, since the table was not fed while it was off.
func (e *Enricher) Reseed() { e.reseed.Store(true) }

// Resync has the enricher reconcile the table with /proc before its next
// batch: the reader calls it when kernel process events may have been
// lost (a seq gap, a socket overrun).
func (e *Enricher) Resync() { e.resync.Store(true) }

// Seen tells the enricher the highest kernel timestamp of the process
// events the reader has handled (see waitReader). Called on the reader
// goroutine, after each batch.
func (e *Enricher) Seen(ts uint64) {
	if ts > e.seenTs.Load() {
		e.seenTs.Store(ts) // only the reader stores
	}
}

// noteExec counts an exec event the reader received (see execSeen).
func (e *Enricher) noteExec(pid uint32) { e.execSeen[pid%execSlots].Add(1) }

// Offer hands b to the enricher, to enrich when enrich is set and then to
// run through st, the selection stages of the plan b was routed with (nil:
// none). Called on the reader goroutine. The table must see every event,
// so a full queue makes the reader wait; the enricher keeps its queue
// short by describing execs from the table (result backlog) once it is
// half full.
func (e *Enricher) Offer(b *event.Batch, enrich bool, st Stages) {
	e.live.Store(true)
	b.Retain(1)
	b.StartEnrich()
	select {
	case e.q <- item{b: b, enrich: enrich, stages: st}:
	case <-e.done: // the enricher has stopped: nothing will take it
		e.skipBatch(b, nil)
	}
}

// SetSelector gives the enricher what it ticks and stops for the
// selection stages. Call it before Run.
func (e *Enricher) SetSelector(s Selector) { e.selector = s }

// Do runs f on the enricher goroutine after the batches offered before it
// (a reload flushes the old plan's stages so), even if the enricher stops
// meanwhile. It returns once f is queued, ErrStopped when the enricher
// has stopped (f does not run), or ctx's error.
func (e *Enricher) Do(ctx context.Context, f func()) error {
	select {
	case e.q <- item{do: f}:
		return nil
	case <-e.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run enriches batches until ctx ends, then marks what is left skipped.
// It returns nil.
func (e *Enricher) Run(ctx context.Context) error {
	e.run(ctx)
	return nil
}

func (e *Enricher) run(ctx context.Context) {
	defer close(e.done)
	defer func() {
		e.reader.Close()
		for _, r := range e.extra {
			r.Close()
		}
	}()
	if e.reseed.Swap(false) {
		e.seed() // before the first events: the daemon starts with enrichment on
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case it := <-e.q:
			e.take(it)
		case c := <-e.views:
			c <- e.view()
		case c := <-e.snaps:
			c <- e.snapshot()
		case now := <-tick.C:
			if len(e.q) == 0 {
				e.housekeep()
			}
			if e.selector != nil {
				e.selector.Tick(now)
			}
		case <-ctx.Done():
		}
	}
	// The reader has stopped: what is left goes out unenriched, through
	// the stages, and their flush straight to the sinks.
	for {
		select {
		case it := <-e.q:
			if it.do != nil {
				it.do()
				continue
			}
			e.skipBatch(it.b, it.stages)
		default:
			if e.selector != nil {
				e.selector.Stop(time.Now())
			}
			return
		}
	}
}

// take handles one item of the queue.
func (e *Enricher) take(it item) {
	if it.do != nil {
		it.do()
		return
	}
	e.enrichBatch(it.b, it.enrich, it.stages)
}

// skipBatch marks what b's records wait for as skipped, and runs st, the
// stages, when set (else its records go to every sink they target).
func (e *Enricher) skipBatch(b *event.Batch, st Stages) {
	for i := range b.Records {
		if b.Records[i].Enrich == event.EnrichPending {
			b.Records[i].Enrich = event.EnrichSkipped
			e.skipped.Inc()
		}
	}
	if st != nil {
		st.Select(b)
	}
	b.EnrichDone()
	b.Release()
}

// enrichBatch enriches b's records when asked, then runs st, the
// selection stages, on them (nil: none).
func (e *Enricher) enrichBatch(b *event.Batch, enrich bool, st Stages) {
	if enrich {
		e.enrichRecords(b)
	}
	if st != nil {
		st.Select(b)
	}
	b.EnrichDone()
	b.Release()
}

// enrichRecords describes b's process events from the table.
func (e *Enricher) enrichRecords(b *event.Batch) {
	if e.reseed.Swap(false) {
		// Enrichment (re)starts: the table was not fed while it was off.
		e.table.Reset(e.tableOptions())
		e.seed()
	}
	if now := time.Now(); now.Sub(e.offAt) > time.Second {
		// The offset grows by the time spent suspended.
		if off, _, err := procinfo.Clocks(); err == nil {
			e.off, e.offAt = off, now
			e.table.SetBoottimeOffset(off)
		}
	}
	behind := len(e.q) > cap(e.q)/2
	e.waitReader(e.readLate(b, behind))
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == event.KindMessage && r.HasProc && (r.Enrich == event.EnrichPending || r.Enrich == event.EnrichTable) {
			e.cur, e.capture, r.Capture = i, r.Capture, nil
			e.apply(r, behind)
			if r.Sender == 0 && r.Proc.TimestampNs > e.appliedTs {
				e.appliedTs = r.Proc.TimestampNs
			}
		}
	}
	e.pre, e.nextPre, e.capture = e.pre[:0], 0, nil
	// After the batch, so that exits in it are applied first.
	e.housekeep()
}

// housekeep runs a resync the reader asked for, settles the last one and
// publishes the table's gauges: after every batch, and on a timer while
// no batch comes (a quiet system must settle too). At most one resync a
// second: under sustained loss each would scan /proc again; the next one
// catches what happened in between.
func (e *Enricher) housekeep() {
	if e.resync.Load() && time.Since(e.lastResync) >= time.Second {
		e.resync.Store(false)
		e.lastResync = time.Now()
		e.resyncNow()
	}
	e.confirmLost()
	e.publish()
}

func (e *Enricher) publish() {
	st := e.table.Stats()
	e.tableLen.Store(int64(st.Processes + st.Threads))
	e.tableEvicted.Store(int64(st.Evicted))
	e.tableExited.Store(int64(st.Exited))
}
