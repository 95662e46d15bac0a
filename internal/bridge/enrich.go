package bridge

import (
	"context"
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

// EnrichOptions configure the enrichment stage.
type EnrichOptions struct {
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
// enricher (see enricher.execSeen).
const execSlots = 4096

// enricher keeps the process table and describes process events from it,
// on its own goroutine, off the kernel reader's path. The reader hands it,
// in order, every batch with process events while any route enriches
// (just before offering the batch to its sinks; sinks of enriching routes
// wait for the batch's enrichment before reading it, the others don't).
// Records no enriching sink receives still update the table
// (event.EnrichTable).
//
// The table is read and written only on the enricher goroutine. An exec's
// new image is read by the reader as it receives the event (capturer);
// the enricher reads /proc for what that capture left (see exec), for a
// process the table does not know, and for the start tick of a fork that
// lands just after a clock tick (see proctable).
type enricher struct {
	q      chan enrichItem
	o      EnrichOptions
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

	// reseed is set by the reader when a plan turns enrichment on: the
	// enricher starts a new table from a /proc scan before its next batch.
	reseed atomic.Bool
	// done is closed when run returns.
	done chan struct{}
	// views carries TableView requests to the enricher goroutine; snaps,
	// Snapshot requests.
	views chan chan TableView
	snaps chan chan TableSnapshot

	// resync is set by the reader when events may have been lost; the
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
	// sel runs the routes' selection stages.
	sel *selector
}

func newEnricher(o EnrichOptions, reg prometheus.Registerer, log *zap.Logger) *enricher {
	if o.QueueSize < 1 {
		o.QueueSize = 1024
	}
	e := &enricher{
		q:      make(chan enrichItem, o.QueueSize),
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
	e.sel = newSelector(reg, e.log, func() {
		if w := e.wake.Load(); w != nil {
			(*w)()
		}
	})
	return e
}

// enrichItem is what the enricher's queue carries: a batch and the plan
// the reader routed it with, or (flush set) a request to flush the
// stages of plan p.
type enrichItem struct {
	b     *event.Batch
	p     *Plan
	flush chan struct{}
}

func (e *enricher) tableOptions() proctable.Options {
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

// noteExec is called by the reader for every exec event it hands over.
func (e *enricher) noteExec(pid uint32) { e.execSeen[pid%execSlots].Add(1) }

// offer hands b to the enricher. Called on the reader goroutine. The table
// must see every event, so a full queue makes the reader wait; the
// enricher keeps its queue short by describing execs from the table
// (result backlog) once it is half full.
func (e *enricher) offer(b *event.Batch, p *Plan) {
	b.Retain(1)
	b.StartEnrich()
	select {
	case e.q <- enrichItem{b: b, p: p}:
	case <-e.done: // the enricher has stopped: nothing will take it
		e.skipBatch(b, p, false)
	}
}

// run enriches batches until ctx ends, then marks what is left skipped.
func (e *enricher) run(ctx context.Context) {
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
			e.sel.tick(now)
		case <-ctx.Done():
		}
	}
	// The reader has stopped: what is left goes out unenriched, through
	// the stages, and their flush straight to the sinks.
	for {
		select {
		case it := <-e.q:
			if it.flush != nil {
				e.sel.flush(it.p, it.flush, time.Now())
				continue
			}
			e.skipBatch(it.b, it.p, true)
		default:
			e.sel.stop(time.Now())
			return
		}
	}
}

// take handles one item of the queue.
func (e *enricher) take(it enrichItem) {
	if it.flush != nil {
		e.sel.flush(it.p, it.flush, time.Now())
		return
	}
	e.enrichBatch(it.b, it.p)
}

// skipBatch marks what b's records wait for as skipped, and runs the
// stages when selecting (else its records go to every sink they target).
func (e *enricher) skipBatch(b *event.Batch, p *Plan, selecting bool) {
	for i := range b.Records {
		if b.Records[i].Enrich == event.EnrichPending {
			b.Records[i].Enrich = event.EnrichSkipped
			e.skipped.Inc()
		}
	}
	if selecting {
		e.sel.batch(b, p)
	}
	b.EnrichDone()
	b.Release()
}

func (e *enricher) enrichBatch(b *event.Batch, p *Plan) {
	if p.Enrich {
		e.enrichRecords(b)
	}
	e.sel.batch(b, p)
	b.EnrichDone()
	b.Release()
}

// enrichRecords describes b's process events from the table.
func (e *enricher) enrichRecords(b *event.Batch) {
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
func (e *enricher) housekeep() {
	if e.resync.Load() && time.Since(e.lastResync) >= time.Second {
		e.resync.Store(false)
		e.lastResync = time.Now()
		e.resyncNow()
	}
	e.confirmLost()
	e.publish()
}

func (e *enricher) publish() {
	st := e.table.Stats()
	e.tableLen.Store(int64(st.Processes + st.Threads))
	e.tableEvicted.Store(int64(st.Evicted))
	e.tableExited.Store(int64(st.Exited))
}
