package bridge

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
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
	// NoSeed skips the /proc scan at start (tests with a fake proc root).
	NoSeed bool
}

// Redacted replaces what redaction removes.
const Redacted = "*****"

// execSlots is the size of the exec counters shared by the reader and the
// enricher (see enricher.execSeen).
const execSlots = 4096

// enricher keeps the process table and describes process events from it,
// on its own goroutine, off the kernel reader's path. The reader hands it,
// in order, every batch with process events while any route enriches
// (after queueing the batch for its sinks; sinks of enriching routes wait
// for the batch's enrichment before reading it, the others don't). Records
// no enriching sink receives still update the table (event.EnrichTable).
//
// The table is read and written only here. /proc is read for an exec (the
// new image), for a process the table does not know, and for the start
// tick of a fork that lands just after a clock tick (see proctable).
type enricher struct {
	q      chan *event.Batch
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

	// seenTs is the highest kernel timestamp the reader has handled; live
	// is set once a reader feeds the enricher (see prefetch).
	seenTs atomic.Uint64
	live   atomic.Bool
	// pre holds prefetch's reads by record index; cur is the record
	// being applied.
	pre []preRead
	cur int
	// like is likeOf's result.
	like procinfo.Info

	// reseed is set by the reader when a plan turns enrichment on: the
	// enricher starts a new table from a /proc scan before its next batch.
	reseed atomic.Bool
	// done is closed when run returns.
	done chan struct{}
	// views carries TableView requests to the enricher goroutine.
	views chan chan TableView

	// resync is set by the reader when events may have been lost; the
	// enricher reconciles the table with /proc before its next batch.
	resync atomic.Bool
	// lost holds exit_lost processes for the reader to emit.
	lostMu sync.Mutex
	lost   []*proctable.Process
	nLost  atomic.Int32
	off    int64     // CLOCK_BOOTTIME - CLOCK_MONOTONIC
	offAt  time.Time // when off was measured

	results                *prometheus.CounterVec
	fromTable, read, gone  prometheus.Counter
	errs, skipped, backlog prometheus.Counter
	startReads             prometheus.Counter
	resyncs, exitLost      prometheus.Counter
	seeded                 prometheus.Counter
	tableLen, tableEvicted atomic.Int64
	errLog                 *ratelog.Limiter
	counted                int       // results counted so far (see apply)
	lastResync             time.Time // see enrichBatch
	// absent are processes the last resync found gone from /proc, not yet
	// confirmed lost (see confirmLost); absentAt is the scan's
	// CLOCK_MONOTONIC time.
	absent      []*proctable.Process
	absentAt    int64
	absentSince time.Time
}

func newEnricher(o EnrichOptions, reg prometheus.Registerer, log *zap.Logger) *enricher {
	if o.QueueSize < 1 {
		o.QueueSize = 1024
	}
	e := &enricher{
		q:      make(chan *event.Batch, o.QueueSize),
		done:   make(chan struct{}),
		views:  make(chan chan TableView),
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
	reg.MustRegister(e.results, e.startReads, e.resyncs, e.exitLost, e.seeded,
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
		}, func() float64 { return float64(e.tableEvicted.Load()) }))
	e.table = proctable.New(e.tableOptions())
	return e
}

func (e *enricher) tableOptions() proctable.Options {
	o := proctable.Options{MaxEntries: e.o.MaxEntries, TickNs: 1e9 / clockTicks}
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

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// noteExec is called by the reader for every exec event it hands over.
func (e *enricher) noteExec(pid uint32) { e.execSeen[pid%execSlots].Add(1) }

// offer hands b to the enricher. Called on the reader goroutine. The table
// must see every event, so a full queue makes the reader wait; the
// enricher keeps its queue short by describing execs from the table
// (result backlog) once it is half full.
func (e *enricher) offer(b *event.Batch) {
	b.Retain(1)
	b.StartEnrich()
	select {
	case e.q <- b:
	case <-e.done: // the enricher has stopped: nothing will take it
		e.skipBatch(b)
	}
}

// takeLost returns the exit_lost processes waiting to be emitted. Called
// on the reader goroutine; costs one atomic load when there are none.
func (e *enricher) takeLost() []*proctable.Process {
	if e.nLost.Load() == 0 {
		return nil
	}
	e.lostMu.Lock()
	l := e.lost
	e.lost = nil
	e.nLost.Store(0)
	e.lostMu.Unlock()
	return l
}

// seed fills the table from a /proc scan.
func (e *enricher) seed() {
	if e.o.NoSeed {
		return
	}
	pids, err := procinfo.Scan(e.o.ProcRoot)
	if err != nil {
		e.log.Warn("scanning /proc to seed the process table", zap.Error(err))
		return
	}
	for _, pid := range pids {
		if o, ok := e.observe(pid); ok {
			e.table.Seed(&o)
			e.seeded.Inc()
		}
	}
	e.publish()
	e.log.Info("process table seeded from /proc", zap.Int("processes", e.table.Len()))
}

// observe reads everything /proc says about pid for the table.
func (e *enricher) observe(pid uint32) (proctable.Observed, bool) {
	in, err := e.reader.Read(pid)
	if err != nil {
		e.readError(pid, err)
		return proctable.Observed{}, false
	}
	if in.Gone {
		return proctable.Observed{PID: pid, Gone: true}, false
	}
	o := proctable.Observed{
		PID: pid, PPID: in.PPID, StartTicks: in.StartTicks,
		Exe: in.Exe, Cmdline: e.redact(in.Cmdline), CmdlineTruncated: in.CmdlineTruncated, Cwd: in.Cwd,
		UID: in.UID, EUID: in.EUID, GID: in.GID, EGID: in.EGID, User: e.users.Name(in.UID, time.Now()),
		Comm: in.Comm, Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
	}
	return o, true
}

// redact applies enrich_redact to args, in place of a copy.
func (e *enricher) redact(args []string) []string {
	if len(e.o.Redact) == 0 {
		return args
	}
	for i, a := range args {
		args[i] = Redact(e.o.Redact, a)
	}
	return args
}

// Redact replaces, for each pattern in turn, the first capture group of
// every match in s by "*****". A pattern without a group changes nothing.
func Redact(patterns []*regexp.Regexp, s string) string {
	for _, re := range patterns {
		if re.NumSubexp() < 1 {
			continue
		}
		ms := re.FindAllStringSubmatchIndex(s, -1)
		if len(ms) == 0 {
			continue
		}
		out := make([]byte, 0, len(s))
		last := 0
		for _, m := range ms {
			if m[2] < 0 {
				continue
			}
			out = append(out, s[last:m[2]]...)
			out = append(out, Redacted...)
			last = m[3]
		}
		s = string(append(out, s[last:]...))
	}
	return s
}

// run enriches batches until ctx ends, then marks what is left skipped.
func (e *enricher) run(ctx context.Context) {
	defer close(e.done)
	defer e.reader.Close()
	if e.reseed.Swap(false) {
		e.seed() // before the first events: the daemon starts with enrichment on
	}
	for ctx.Err() == nil {
		select {
		case b := <-e.q:
			e.enrichBatch(b)
		case c := <-e.views:
			c <- e.view()
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
	if e.reseed.Swap(false) {
		// Enrichment (re)starts: the table was not fed while it was off.
		e.table = proctable.New(e.tableOptions())
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
	if !behind {
		e.prefetch(b)
	}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == event.KindMessage && r.HasProc && (r.Enrich == event.EnrichPending || r.Enrich == event.EnrichTable) {
			e.cur = i
			e.apply(r, behind)
		}
	}
	e.pre = e.pre[:0]
	// After the batch, so that exits in it are applied first. At most one
	// resync a second: under sustained loss each would scan /proc again;
	// the next one catches what happened in between.
	if e.resync.Load() && time.Since(e.lastResync) >= time.Second {
		e.resync.Store(false)
		e.lastResync = time.Now()
		e.resyncNow()
	}
	e.confirmLost()
	e.publish()
	b.EnrichDone()
	b.Release()
}

// prefetch reads /proc for the batch's execs, then waits until the reader
// has handled every event the kernel sent before the last read (or 2 ms
// have passed): a later exec of the same pid that the reads may show is
// then counted in execSeen when the execs are applied.
func (e *enricher) prefetch(b *event.Batch) {
	reads := 0
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind != event.KindMessage || !r.HasProc || r.Proc.What != cnmsg.ProcExec || r.Sender != 0 ||
			(r.Enrich != event.EnrichPending && r.Enrich != event.EnrichTable) {
			continue
		}
		for len(e.pre) <= i {
			e.pre = append(e.pre, preRead{})
		}
		in, err := e.reader.ReadExec(r.Proc.PID, e.likeOf(e.table.Get(r.Proc.TGID)))
		e.pre[i] = preRead{ok: true, in: in, err: err}
		reads++
	}
	if reads == 0 || !e.live.Load() {
		return
	}
	read := monotonicNs()
	for deadline := read + 2e6; e.seenTs.Load() < uint64(read) && monotonicNs() < deadline; {
		time.Sleep(20 * time.Microsecond)
	}
}

// likeOf returns what the table knows of p that an exec may keep (nil
// for nil), for ReadExec to reuse its strings. The result is valid until
// the next call.
func (e *enricher) likeOf(p *proctable.Process) *procinfo.Info {
	if p == nil {
		return nil
	}
	e.like = procinfo.Info{Exe: p.Exe, Cwd: p.Cwd, Comm: p.Comm, Cgroup: p.Cgroup, ContainerID: p.ContainerID, PodUID: p.PodUID}
	return &e.like
}

// preRead is a /proc read made by prefetch for the record at its index.
type preRead struct {
	ok  bool
	in  procinfo.Info
	err error
}

func monotonicNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func (e *enricher) publish() {
	st := e.table.Stats()
	e.tableLen.Store(int64(st.Processes + st.Threads))
	e.tableEvicted.Store(int64(st.Evicted))
}

// resyncNow reconciles the table with /proc after loss.
func (e *enricher) resyncNow() {
	e.resyncs.Inc()
	pids, err := procinfo.Scan(e.o.ProcRoot)
	if err != nil {
		e.log.Warn("scanning /proc to resync the process table", zap.Error(err))
		return
	}
	live := make([]proctable.Observed, 0, len(pids))
	for _, pid := range pids {
		// Known processes need only their start tick to be matched.
		if p := e.table.Get(pid); p != nil {
			ticks, gone, err := e.reader.ReadStartTicks(pid)
			if err == nil && !gone {
				live = append(live, proctable.Observed{PID: pid, StartTicks: ticks})
			}
			continue
		}
		if o, ok := e.observe(pid); ok {
			live = append(live, o)
		}
	}
	lost, absent, added := e.table.Resync(live)
	e.seeded.Add(float64(len(added)))
	e.emitLost(lost)
	// Processes gone from /proc may still have their exit event on its way
	// (received after the scan began): they are exit_lost only if it does
	// not come (see confirmLost).
	e.absent = append(e.absent, absent...)
	e.absentAt, e.absentSince = monotonicNs(), time.Now()
	e.log.Info("process table resynchronized with /proc after loss",
		zap.Int("pid_reused", len(lost)), zap.Int("gone_unconfirmed", len(absent)), zap.Int("seeded", len(added)))
}

// confirmLost reports as exit_lost the processes a resync found gone from
// /proc whose exit event has not come once the reader has handled events
// stamped 50 ms after the scan (or, on a quiet system, a second later).
func (e *enricher) confirmLost() {
	if len(e.absent) == 0 {
		return
	}
	if e.seenTs.Load() < uint64(e.absentAt+50e6) && time.Since(e.absentSince) < time.Second {
		return
	}
	var lost []*proctable.Process
	for _, p := range e.absent {
		if cur := e.table.Confirm(p); cur != nil {
			lost = append(lost, cur)
		}
	}
	e.absent = e.absent[:0]
	e.emitLost(lost)
}

// emitLost hands exit_lost processes to the reader.
func (e *enricher) emitLost(lost []*proctable.Process) {
	if len(lost) == 0 {
		return
	}
	e.exitLost.Add(float64(len(lost)))
	e.lostMu.Lock()
	e.lost = append(e.lost, lost...)
	e.nLost.Store(int32(len(e.lost)))
	e.lostMu.Unlock()
}

// describeOnly describes an event from a userspace sender (listener.
// userspace_senders) without letting it change the table: from the table
// when it knows the process, else from /proc.
func (e *enricher) describeOnly(r *event.Record) {
	ev := &r.Proc
	pid, tgid := ev.PID, ev.TGID
	if ev.What == cnmsg.ProcFork {
		pid, tgid = ev.ChildPID, ev.ChildTGID
	}
	en := &event.Enrichment{PID: pid}
	if p := e.table.Lookup(pid); p != nil && p.TGID == tgid {
		en.Process = p
		e.count(e.fromTable)
	} else if o, ok := e.observe(tgid); ok {
		e.count(e.read)
		en.Process = &proctable.Process{PID: tgid, TGID: tgid, PPID: o.PPID, StartTicks: o.StartTicks,
			Exe: o.Exe, Cmdline: o.Cmdline, CmdlineTruncated: o.CmdlineTruncated, Cwd: o.Cwd,
			UID: o.UID, EUID: o.EUID, GID: o.GID, EGID: o.EGID, User: o.User, Comm: o.Comm,
			Cgroup: o.Cgroup, ContainerID: o.ContainerID, PodUID: o.PodUID,
			EntityID: e.table.EntityID(tgid, o.StartTicks), StartTime: e.table.StartTime(o.StartTicks)}
	} else {
		en.Gone = true
		e.count(e.gone)
	}
	if en.Process != nil {
		en.Parent = e.table.Get(en.Process.PPID)
	}
	r.Enriched, r.Enrich = en, event.EnrichDone
}

// count adds one to an enrich_total result.
func (e *enricher) count(c prometheus.Counter) {
	c.Inc()
	e.counted++
}

// apply feeds r to the table and, for a pending record, describes it.
func (e *enricher) apply(r *event.Record, behind bool) {
	counted := e.counted
	if r.Sender != 0 {
		if r.Enrich == event.EnrichPending {
			e.describeOnly(r)
		}
		return
	}
	ev := &r.Proc
	var p *proctable.Process
	en := &event.Enrichment{}
	switch ev.What {
	case cnmsg.ProcFork:
		var res proctable.ForkResult
		p, res = e.table.Fork(ev.ParentTGID, ev.ChildPID, ev.ChildTGID, ev.TimestampNs)
		switch {
		case res.Thread:
			if p == nil {
				p = e.unknown(ev.ChildTGID)
			}
		case !res.ParentKnown:
			// The parent is not in the table (evicted, or lost): read the
			// child as a whole.
			if o, ok := e.observe(ev.ChildPID); ok {
				e.count(e.read)
				p = e.table.Seed(&o)
			}
		case res.Ambiguous:
			e.startReads.Inc()
			if ticks, gone, err := e.reader.ReadStartTicks(ev.ChildPID); err == nil && !gone {
				p = e.table.SetStart(ev.ChildTGID, ticks)
			}
		}
	case cnmsg.ProcExec:
		p = e.exec(ev, behind)
	case cnmsg.ProcExit:
		var thread bool
		p, thread = e.table.Exit(ev.PID, ev.TGID)
		if p != nil {
			if !thread {
				en.DurationNs, en.HasDuration = p.DurationNs(ev.TimestampNs, e.off), true
			}
		}
	case cnmsg.ProcUID:
		p = e.table.SetUID(ev.PID, ev.TGID, ev.RUID, ev.EUID, e.users.Name(ev.RUID, time.Now()))
		if p == nil {
			p = e.unknown(ev.TGID)
		}
	case cnmsg.ProcGID:
		p = e.table.SetGID(ev.PID, ev.TGID, ev.RGID, ev.EGID)
		if p == nil {
			p = e.unknown(ev.TGID)
		}
	case cnmsg.ProcComm:
		p = e.table.SetComm(ev.PID, ev.TGID, string(ev.CommBytes()))
		if p == nil {
			p = e.unknown(ev.TGID)
		}
	default: // sid, ptrace, coredump
		p = e.table.Update(ev.PID, ev.TGID, nil)
		if p == nil {
			p = e.unknown(ev.TGID)
		}
	}
	if r.Enrich != event.EnrichPending {
		return
	}
	if p != nil && e.counted == counted {
		e.count(e.fromTable)
	}
	if p == nil {
		en.Gone, en.PID = true, ev.PID
		if ev.What == cnmsg.ProcFork {
			en.PID = ev.ChildPID
		}
		r.Enriched, r.Enrich = en, event.EnrichDone
		e.count(e.gone)
		return
	}
	en.Process = p
	if ev.What != cnmsg.ProcExit || p.PPID != 0 {
		en.Parent = e.table.Get(p.PPID)
	}
	if n := int(r.Ancestors); n > 0 && en.Parent != nil {
		en.Ancestors = e.table.Ancestors(make([]*proctable.Process, 0, n), p, n)
	}
	r.Enriched, r.Enrich = en, event.EnrichDone
}

// unknown reads a process the table does not know and seeds it; nil when
// it has gone.
func (e *enricher) unknown(tgid uint32) *proctable.Process {
	o, ok := e.observe(tgid)
	if !ok {
		return nil
	}
	e.count(e.read)
	return e.table.Seed(&o)
}

// exec applies an exec event: the new image is read from /proc.
func (e *enricher) exec(ev *cnmsg.ProcEvent, behind bool) *proctable.Process {
	slot := ev.PID % execSlots
	e.execDone[slot]++
	known := e.table.Get(ev.TGID) != nil
	if behind && known {
		e.count(e.backlog)
		return e.table.Exec(ev.PID, ev.TGID, &proctable.Observed{Gone: true}, false)
	}
	if !known {
		if o, ok := e.observe(ev.PID); ok {
			e.count(e.read)
			stale := e.execSeen[slot].Load() != e.execDone[slot]
			return e.table.Exec(ev.PID, ev.TGID, &o, stale)
		}
		return nil
	}
	var in procinfo.Info
	var err error
	if e.cur < len(e.pre) && e.pre[e.cur].ok {
		in, err = e.pre[e.cur].in, e.pre[e.cur].err
	} else {
		in, err = e.reader.ReadExec(ev.PID, e.likeOf(e.table.Get(ev.TGID)))
	}
	if err != nil {
		e.readError(ev.PID, err)
		in = procinfo.Info{Gone: true}
	}
	// Read after /proc: any later exec received by now shows here.
	stale := e.execSeen[slot].Load() != e.execDone[slot]
	switch {
	case in.Exe == "" && len(in.Cmdline) == 0:
		// A zombie: it exited before its image could be read.
		in = procinfo.Info{Gone: true}
	case len(in.Cmdline) == 0:
		// An image without arguments yet: the read caught a later exec
		// of this pid in progress (the kernel sets the arguments up
		// after it switches the image), whose event is still to come.
		stale = true
	}
	// The uids and gids are the table's: a set-id exec changes them in
	// the kernel's commit_creds, which sends uid and gid events before
	// the exec event (TestSetIDExec).
	cur := e.table.Get(ev.TGID)
	o := proctable.Observed{
		PID: ev.PID, Gone: in.Gone,
		Exe: in.Exe, Cmdline: e.redact(in.Cmdline), CmdlineTruncated: in.CmdlineTruncated, Cwd: in.Cwd, Comm: in.Comm,
		UID: cur.UID, EUID: cur.EUID, GID: cur.GID, EGID: cur.EGID, User: cur.User,
		Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
	}
	if in.Gone {
		o.Cgroup, o.ContainerID, o.PodUID = cur.Cgroup, cur.ContainerID, cur.PodUID
	}
	if in.Gone {
		e.count(e.gone)
	} else {
		e.count(e.read)
	}
	return e.table.Exec(ev.PID, ev.TGID, &o, stale)
}

func (e *enricher) readError(pid uint32, err error) {
	e.count(e.errs)
	if e.errLog.Allow("read", time.Now()) {
		e.log.Warn("reading /proc failed (logged at most once a minute)", zap.Uint32("pid", pid), zap.Error(err))
	}
}
