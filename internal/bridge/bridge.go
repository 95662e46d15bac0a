// Package bridge is the per-message path between the kernel reader and the
// sinks: sender trust, decoding, sequence-gap accounting (the ledger),
// routing and batching. It runs on the reader goroutine and allocates
// nothing per message but for exec events while a route enriches: their
// process is read from /proc there and then, by the enrichment stage's
// capturer (enrich.Capturer), within a time budget per batch. A batch
// with records to enrich, or for the routes' selection stages (where,
// rate_limit, fold: select.go), also goes to the enricher's goroutine
// (internal/enrich), which enriches it and then runs the stages on it;
// the sinks concerned wait for that before they read it.
//
// It makes the reader wait in two cases only: a sink configured with
// when_full: block is full, or the enricher's queue (enrich_queue_size
// batches) is full while a route enriches or selects, since the process
// table must see every event and the stages every record in order
// (enrich.Enricher.Offer; the enricher keeps the queue short by
// describing execs from the table once it is half full). The kernel then
// drops at the socket, counted exactly (cnbridged_socket_drops_total).
package bridge

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/ratelog"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// Rejection reasons (cnbridged_messages_rejected_total{reason}).
const (
	ReasonMalformed = "malformed"
	ReasonUntrusted = "untrusted_sender"
	ReasonUnrouted  = "unrouted"
)

// ReplyMatcher matches kernel messages to pending connector requests. Offer
// runs on the reader goroutine and must not block; it reports whether m was
// a reply (which is still routed as usual).
type ReplyMatcher interface {
	Offer(m cnmsg.Message, now time.Time) bool
}

// Bridge turns received datagrams into routed batches.
type Bridge struct {
	log  *zap.Logger
	plan atomic.Pointer[Plan]
	// active is the plan of the batch being handled, nil between batches:
	// the reader publishes it before using the plan (see acquire).
	active atomic.Pointer[Plan]
	// idle is signalled (capacity 1) each time the reader ends a batch,
	// for SetPlan's wait.
	idle chan struct{}
	pool *event.Pool
	// Owned by the reader goroutine.
	ledger *seqtrack.Tracker
	seqs   SeqRecorder // nil: no restart trace
	enr    *enrich.Enricher
	cap    *enrich.Capturer
	sel    *selector // the routes' selection stages, run by the enricher
	ids    map[cnmsg.ID]*idCounters
	other  *idCounters
	lastID cnmsg.ID // one-entry cache in front of ids: streams come in runs
	lastC  *idCounters
	warn   *ratelog.Limiter
	// overruns reads the listener's ENOBUFS count (nil: not known);
	// lastOverruns is the count at the previous batch.
	overruns     func() uint64
	lastOverruns uint64
	// enrOn: the previous batch's plan enriched.
	enrOn bool

	m *metrics
}

// New returns a bridge with an initial plan, registering its metrics. It
// hands batches to enr, the enrichment stage, while a plan enriches: run
// enr (Run) when any plan may ask for enrichment.
func New(p *Plan, ledger seqtrack.Options, enr *enrich.Enricher, reg prometheus.Registerer, log *zap.Logger) *Bridge {
	m := newMetrics(reg)
	b := &Bridge{
		log:    log.Named("bridge"),
		pool:   event.NewPool(),
		ledger: seqtrack.New(ledger),
		ids:    make(map[cnmsg.ID]*idCounters),
		warn:   ratelog.New(time.Minute, 64),
		idle:   make(chan struct{}, 1),
		m:      m,
	}
	b.enr, b.cap = enr, enr.Capturer()
	enr.SetEnabled(p.Enrich)
	if p.Enrich {
		b.enrOn = true
		enr.Reseed() // seeded as the enricher starts
	}
	b.other = b.countersFor("other", "other")
	b.sel = newSelector(reg, b.log, enr.WakeReader)
	enr.SetSelector(b.sel)
	b.sel.declare(p)
	b.plan.Store(p)
	return b
}

// SetOverruns tells the bridge how to read the socket's overrun (ENOBUFS)
// count: a rise is loss, after which the process table is resynchronized.
// Call before the listener runs.
func (b *Bridge) SetOverruns(f func() uint64) {
	b.overruns = f
	if f != nil {
		b.lastOverruns = f()
	}
}

// Close releases what the reader side holds (the capture's descriptor of
// /proc). Call it after the last Handle.
func (b *Bridge) Close() { b.cap.Close() }

// Handle processes one batch of datagrams from the listener. It is the
// listener.Handler. Each message goes through the steps of handleMessage;
// what they keep is stored in one event.Batch, dispatched to the sinks at
// the end (or earlier, when it fills up).
func (b *Bridge) Handle(dgs []cnmsg.Datagram, now time.Time) {
	p := b.acquire()
	defer b.release()
	h := handling{p: p, now: now, ts: now.UnixNano(), batch: b.pool.Get()}
	b.addSelected(&h)
	b.beginEnrich(&h)
	for i := range dgs {
		b.handleDatagram(&h, &dgs[i])
	}
	b.dispatch(p, h.batch, h.used)
	b.enr.Seen(h.maxTs)
}

// handling is the state of one Handle call, on the reader's stack.
type handling struct {
	p     *Plan
	now   time.Time
	ts    int64 // now, Unix nanoseconds: every record's time
	batch *event.Batch
	used  uint64 // the targets of batch's records
	maxTs uint64 // highest kernel process event timestamp handled
}

// store adds r to the batch being filled.
func (b *Bridge) store(h *handling, r *event.Record) {
	h.batch = b.add(h.p, h.batch, r, &h.used)
}

// beginEnrich follows the plan's enrichment switch and, while it is on,
// flags a resync after socket overruns and stores the exit_lost records
// the enricher has found.
func (b *Bridge) beginEnrich(h *handling) {
	p := h.p
	if p.Enrich != b.enrOn {
		b.enrOn = p.Enrich
		if p.Enrich {
			b.enr.Reseed()
		}
	}
	if !p.Enrich {
		return
	}
	b.cap.Begin(h.now)
	if b.overruns != nil {
		if n := b.overruns(); n != b.lastOverruns {
			b.lastOverruns = n
			b.enr.Resync()
		}
	}
	b.addExitLost(h)
}

// handleDatagram splits one datagram into its messages.
func (b *Bridge) handleDatagram(h *handling, d *cnmsg.Datagram) {
	if d.Truncated {
		b.malformed("truncated", h.now)
		return
	}
	rest := d.Data
	for len(rest) > 0 {
		m, next, err := cnmsg.Next(rest)
		if err != nil {
			b.malformed(cnmsg.Reason(err), h.now)
			return
		}
		rest = next
		b.handleMessage(h, d.Sender, m)
	}
}

// handleMessage takes one message through the steps: sender trust, reply
// matching, process event decoding, sequence accounting (account), then
// routing and storing (route).
func (b *Bridge) handleMessage(h *handling, sender uint32, m cnmsg.Message) {
	p := h.p
	if sender != 0 && !trusted(p.Trusted, m.ID) {
		b.untrusted(sender, m.ID, h.now)
		return
	}
	var r event.Record
	r.Msg, r.Time, r.Sender = m, h.ts, sender
	if p.Replies != nil && sender == 0 {
		p.Replies.Offer(r.Msg, h.now) // by value: r stays on the stack
	}
	var evp *cnmsg.ProcEvent
	if m.ID.IsProc() {
		ev, err := cnmsg.DecodeProc(m.Data)
		if err != nil {
			b.malformed(cnmsg.Reason(err), h.now)
			return
		}
		r.Proc, r.HasProc = ev, true
		evp = &r.Proc
		if c, ok := b.m.procByWhat[ev.What]; ok {
			c.Inc()
		} else {
			b.m.procOther.Inc()
		}
	}
	b.account(h, &r, evp)
	b.route(h, &r, evp)
}

// untrusted counts a message of a userspace sender that
// listener.userspace_senders does not allow.
func (b *Bridge) untrusted(sender uint32, id cnmsg.ID, now time.Time) {
	b.m.rejUntrusted.Inc()
	if b.shouldWarn("untrusted", now) {
		b.log.Warn("rejected messages from a userspace sender (not the kernel); allow ids with listener.userspace_senders (logged at most once a minute)",
			zap.Uint32("sender", sender), zap.Uint32("idx", id.Idx), zap.Uint32("val", id.Val))
	}
}

// account counts r for its connector id and feeds its seq to the loss
// ledger (and the restart trace), storing a loss marker for a gap. evp is
// r's process event, nil for other messages.
func (b *Bridge) account(h *handling, r *event.Record, evp *cnmsg.ProcEvent) {
	p, id := h.p, r.Msg.ID
	c := b.counters(id)
	c.received.Inc()
	key := seqtrack.Key{Sender: r.Sender, Idx: id.Idx, Val: id.Val}
	if evp != nil {
		key.CPU = evp.CPU
	}
	res := b.ledger.Observe(key, r.Msg.Seq)
	b.m.restart.observed(key, res)
	if b.seqs != nil && r.Sender == 0 && res.Kind != seqtrack.Duplicate && res.Kind != seqtrack.Late {
		b.seqs.Set(key.Idx, key.Val, key.CPU, r.Msg.Seq)
	}
	switch res.Kind {
	case seqtrack.Duplicate:
		c.duplicates.Inc()
	case seqtrack.Reset:
		c.resets.Inc()
	}
	if res.Lost == 0 || (p.ProcFiltered && id.IsProc()) {
		return
	}
	if p.Enrich && id.IsProc() && r.Sender == 0 {
		b.enr.Resync()
	}
	b.m.restart.countLost(c, key, res.Lost)
	if t := p.Table.LossTargets(id); t != 0 {
		lr := event.Record{Kind: event.KindLoss, Time: h.ts, Sender: r.Sender, Targets: t}
		lr.Msg.ID = id
		lr.Loss = event.Loss{CPU: key.CPU, HasCPU: evp != nil, FromSeq: res.FromSeq, ToSeq: res.ToSeq, Lost: res.Lost}
		b.store(h, &lr)
		b.m.lossMarkers.Inc()
	}
}

// route applies the userspace event filter and the routes to r and stores
// it for its targets, marking what enrichment it needs. With enrichment
// on, every kernel process event feeds the process table, also those no
// sink receives. Events of trusted userspace senders are described but
// never change the table.
func (b *Bridge) route(h *handling, r *event.Record, evp *cnmsg.ProcEvent) {
	p, id := h.p, r.Msg.ID
	table := p.Enrich && evp != nil && evp.What != cnmsg.ProcNone
	tableOnly := table && r.Sender == 0 // feeds the table even if no sink takes it
	if tableOnly {
		h.maxTs = max(h.maxTs, evp.TimestampNs)
	}
	if evp != nil && p.UserFilter != nil && evp.What != cnmsg.ProcNone && !p.UserFilter.Has(evp) {
		b.m.userFiltered.Inc()
		if tableOnly {
			b.addTableOnly(h, r)
		}
		return
	}
	m := p.Table.MatchSelect(id, evp)
	r.Targets = m.Sinks
	dropped := m.ThreadDropped
	if m.Stages != 0 {
		// Routes that select decide on the enricher goroutine; the sinks
		// only they reach wait for it.
		r.Stages, r.SelectTargets = m.Stages, m.Sinks&^(m.Direct|p.Tap)
	}
	if dropped != 0 {
		b.m.threadFiltered.Inc()
	}
	if r.Targets == 0 {
		switch {
		case dropped != 0:
		case evp != nil && p.Table.MatchesID(id):
			b.m.routeFiltered.Inc()
		default:
			b.m.rejUnr.Inc()
		}
		if tableOnly {
			b.addTableOnly(h, r)
		}
		return
	}
	if table {
		es, anc := p.Table.Enrich(id, evp)
		r.EnrichTargets = es & r.Targets
		r.Ancestors = uint8(min(anc, 255))
		r.Enrich = event.EnrichTable
		if r.EnrichTargets != 0 {
			r.Enrich = event.EnrichPending
		}
		if r.Sender == 0 {
			b.received(r)
		}
	}
	b.store(h, r)
}

// addTableOnly stores r, which no sink receives, for the process table.
func (b *Bridge) addTableOnly(h *handling, r *event.Record) {
	r.Targets, r.Enrich = 0, event.EnrichTable
	b.received(r)
	b.store(h, r)
}

// received does, for a kernel process event that feeds the process table,
// what cannot wait for the enricher: an exec is counted and its process
// read from /proc (enrich.Capturer) before the process can end.
func (b *Bridge) received(r *event.Record) {
	if ev := &r.Proc; ev.What == cnmsg.ProcExec {
		r.Capture = b.cap.Exec(ev.PID, ev.TimestampNs)
	}
}

// exitEvent stands for exit_lost records when matching routes.
var exitEvent = cnmsg.ProcEvent{What: cnmsg.ProcExit}

// addExitLost stores the exit_lost records the enricher found after a
// resync, for the sinks of enriching routes that receive exits.
func (b *Bridge) addExitLost(h *handling) {
	lost := b.enr.TakeLost()
	if len(lost) == 0 {
		return
	}
	id := cnmsg.ID{Idx: 1, Val: 1}
	ev := exitEvent
	m := h.p.Table.EnrichSelect(id, &ev)
	targets := m.Sinks
	if targets == 0 {
		return
	}
	var selectTargets uint64
	if m.Stages != 0 {
		selectTargets = targets &^ (m.Direct | h.p.Tap)
	}
	for _, proc := range lost {
		r := event.Record{Kind: event.KindExitLost, Time: h.ts, Targets: targets, EnrichTargets: targets,
			Stages: m.Stages, SelectTargets: selectTargets,
			Enrich: event.EnrichDone, Enriched: &event.Enrichment{Process: proc}}
		r.Msg.ID = id
		b.store(h, &r)
	}
}

// add stores r in batch, dispatching the batch first when it is full.
func (b *Bridge) add(p *Plan, batch *event.Batch, r *event.Record, used *uint64) *event.Batch {
	if !batch.Fits(len(r.Msg.Data)) {
		b.dispatch(p, batch, *used)
		batch, *used = b.pool.Get(), 0
	}
	batch.Add(r)
	*used |= r.Targets
	return batch
}

// dispatch offers batch to every sink it has records for and drops the
// bridge's own reference. A batch with records to enrich, or for routes'
// selection stages, also goes to the enricher; the sinks concerned wait for
// it before they read it.
func (b *Bridge) dispatch(p *Plan, batch *event.Batch, used uint64) {
	if p.Enrich || p.Stages != nil {
		for i := range batch.Records {
			r := &batch.Records[i]
			if st := r.Enrich; st == event.EnrichPending || st == event.EnrichTable || r.Stages != 0 {
				b.enr.Offer(batch, p.Enrich, p.selecting)
				break
			}
		}
	}
	for i, s := range p.Sinks {
		if s != nil && used&(1<<i) != 0 {
			s.Offer(batch)
		}
	}
	batch.Release()
}

func trusted(ps []router.Pattern, id cnmsg.ID) bool {
	for _, p := range ps {
		if p.Matches(id) {
			return true
		}
	}
	return false
}
