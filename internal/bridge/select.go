package bridge

import (
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/ratelog"
)

// tickEvery is how often the stages are asked for their due suppression
// reports.
const tickEvery = time.Second

// selector runs the routes' selection stages (Plan.Stages) on the
// enricher goroutine (internal/enrich runs them through enrich.Stages and
// enrich.Selector, knowing neither routes nor sinks), after a batch's
// enrichment: each record a selecting
// route matched is offered to that route's stage, and the sinks that only
// such routes reach skip it unless one of their routes selected it
// (event.Record.Unselected). What the stages add (life and suppression
// records) is handed to the reader, which stores it in its next batch:
// only the reader offers to the sinks while it runs, so the enricher
// never waits on a sink (a when_full: block sink may be waiting for the
// enricher). At stop, with the reader gone, the selector offers them
// itself.
type selector struct {
	log    *zap.Logger
	errLog *ratelog.Limiter
	// full and plain are the record's fields as an enriching route and as
	// another route see them, built at most once per record.
	full, plain fields.Record
	// live are the plans whose stages were offered records and have not
	// been flushed.
	live     []*Plan
	lastTick time.Time
	// adds are what the stages added, for the reader: mu guards them,
	// nAdds is their count (read by the reader without the lock).
	mu    sync.Mutex
	adds  []added
	nAdds atomic.Int32
	wake  func()

	records             *prometheus.CounterVec
	lives               *prometheus.CounterVec
	keys, open          *prometheus.GaugeVec
	keysRoutes, opRoute map[int]bool
}

// added are records a plan's stage added, with their targets set.
type added struct {
	p    *Plan
	recs []event.Record
	// done, when set, is closed once the records are offered (a flush at
	// reload waits for it).
	done chan struct{}
}

// outcomes of cnbridged_route_records_total, in the order count adds them.
var outcomes = [...]string{"sent", "filtered", "where_error", "suppressed", "folded"}

func newSelector(reg prometheus.Registerer, log *zap.Logger, wake func()) *selector {
	s := &selector{
		log:    log,
		wake:   wake,
		errLog: ratelog.New(time.Minute, 64),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_route_records_total",
			Help: "Records a route with a selection stage (where, rate_limit, fold) was offered, by route (its index in the config) and outcome: sent, filtered (its where said no), where_error (its where could not be evaluated; logged at most once a minute per route), suppressed (over its rate limit, counted in suppressed records), folded (into a life record). Life records count too: they are offered like records.",
		}, []string{"route", "outcome"}),
		lives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_route_lives_total",
			Help: "Life records a fold: lifecycle route built (before its where and rate limit), by route.",
		}, []string{"route"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cnbridged_route_rate_limit_keys",
			Help: "Keys a route's rate limit holds (bounded by its max_keys, plus the overflow key), by route.",
		}, []string{"route"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cnbridged_route_open_lives",
			Help: "Process lives a fold: lifecycle route holds open (bounded: 65536), by route.",
		}, []string{"route"}),
		keysRoutes: map[int]bool{},
		opRoute:    map[int]bool{},
	}
	reg.MustRegister(s.records, s.lives, s.keys, s.open)
	return s
}

// batch runs b's records through p's stages.
func (s *selector) batch(b *event.Batch, p *Plan) {
	if p.Stages == nil {
		return
	}
	var adds []event.Record
	seen := false
	for i := range b.Records {
		r := &b.Records[i]
		if r.Stages == 0 {
			continue
		}
		seen = true
		var full, plain bool
		var selected uint64
		for st := r.Stages; st != 0; st &= st - 1 {
			k := bits.TrailingZeros64(st)
			if k >= len(p.Stages) {
				continue
			}
			stage := p.Stages[k]
			var fr *fields.Record
			if stage.Enrich {
				if !full {
					p.Encoder.Fields(r, &s.full)
					full = true
				}
				fr = &s.full
			} else {
				if !plain {
					pr := r.Plain()
					p.Encoder.Fields(&pr, &s.plain)
					plain = true
				}
				fr = &s.plain
			}
			send, extra, err := stage.Sel.Select(fr, r.Time)
			if send {
				selected |= stage.Sinks
			}
			if err != nil {
				s.whereError(stage, err)
			}
			for j := range extra {
				extra[j].Targets = stage.Sinks
			}
			adds = append(adds, extra...)
		}
		r.Unselected = r.SelectTargets &^ selected
	}
	if !seen {
		return
	}
	s.noteLive(p)
	s.hand(p, adds, nil)
	s.count(p)
	s.Tick(time.Now())
}

// whereError logs a route's evaluation error, at most once a minute per
// route (all are counted).
func (s *selector) whereError(stage *Stage, err error) {
	if s.errLog.Allow(strconv.Itoa(stage.Route), time.Now()) {
		s.log.Warn("a route's where could not be evaluated on a record; the route did not send it (counted in cnbridged_route_records_total{outcome=\"where_error\"}; logged at most once a minute per route)",
			zap.Int("route", stage.Route), zap.Error(err))
	}
}

func (s *selector) noteLive(p *Plan) {
	for _, q := range s.live {
		if q == p {
			return
		}
	}
	s.live = append(s.live, p)
}

// Tick asks the live stages for their due suppression reports, about
// once a second (enrich.Selector: the enricher calls it between batches).
func (s *selector) Tick(now time.Time) {
	if now.Sub(s.lastTick) < tickEvery {
		return
	}
	s.lastTick = now
	for _, p := range s.live {
		var adds []event.Record
		for _, stage := range p.Stages {
			extra := stage.Sel.Tick(now.UnixNano())
			for j := range extra {
				extra[j].Targets = stage.Sinks
			}
			adds = append(adds, extra...)
		}
		s.hand(p, adds, nil)
		s.count(p)
	}
	s.gauges()
}

// flush empties p's stages (open lives, pending suppression counts) at a
// reload, for the reader to offer to p's sinks; done is closed once it
// has.
func (s *selector) flush(p *Plan, done chan struct{}, now time.Time) {
	adds := s.flushPlan(p, now)
	if len(adds) == 0 {
		close(done)
		return
	}
	s.hand(p, adds, done)
}

func (s *selector) flushPlan(p *Plan, now time.Time) []event.Record {
	for i, q := range s.live {
		if q == p {
			s.live = append(s.live[:i], s.live[i+1:]...)
			break
		}
	}
	var adds []event.Record
	for _, stage := range p.Stages {
		extra := stage.Sel.Flush(now.UnixNano())
		for j := range extra {
			extra[j].Targets = stage.Sinks
		}
		adds = append(adds, extra...)
	}
	s.count(p)
	s.gauges()
	return adds
}

// Stop flushes every live plan's stages at stop, once the reader is gone,
// and offers what they add and what the reader did not take to the sinks
// (enrich.Selector: the enricher calls it as it stops).
func (s *selector) Stop(now time.Time) {
	adds := s.take()
	for len(s.live) > 0 {
		p := s.live[0]
		if recs := s.flushPlan(p, now); len(recs) > 0 {
			adds = append(adds, added{p: p, recs: recs})
		}
	}
	pool := event.NewPool()
	for _, a := range adds {
		offerAdded(pool, a)
	}
}

// hand gives the reader records p's stages added, and wakes it when it
// has taken everything before (once per hand-over, not per batch: under
// load the reader comes anyway).
func (s *selector) hand(p *Plan, recs []event.Record, done chan struct{}) {
	if len(recs) == 0 && done == nil {
		return
	}
	s.mu.Lock()
	first := len(s.adds) == 0
	s.adds = append(s.adds, added{p: p, recs: recs, done: done})
	s.nAdds.Store(int32(len(s.adds)))
	s.mu.Unlock()
	if first && s.wake != nil {
		s.wake()
	}
}

// take returns what the stages added since the last call. Called on the
// reader goroutine; one atomic load when there is nothing.
func (s *selector) take() []added {
	if s.nAdds.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	a := s.adds
	s.adds = nil
	s.nAdds.Store(0)
	s.mu.Unlock()
	return a
}

// offerAdded offers a's records to the sinks of its plan in batches of
// their own.
func offerAdded(pool *event.Pool, a added) {
	batch, used := pool.Get(), uint64(0)
	for i := range a.recs {
		if !batch.Fits(0) {
			offerTo(a.p, batch, used)
			batch, used = pool.Get(), 0
		}
		batch.Add(&a.recs[i])
		used |= a.recs[i].Targets
	}
	offerTo(a.p, batch, used)
	if a.done != nil {
		close(a.done)
	}
}

// offerTo offers batch to p's sinks it has records for and drops the
// caller's reference.
func offerTo(p *Plan, batch *event.Batch, used uint64) {
	for i, t := range p.Sinks {
		if t != nil && used&(1<<i) != 0 {
			t.Offer(batch)
		}
	}
	batch.Release()
}

// count adds p's stages' counts to the metrics.
func (s *selector) count(p *Plan) {
	for _, stage := range p.Stages {
		c, was := stage.Sel.Counts, stage.published
		if c == was {
			continue
		}
		if stage.counters == nil {
			s.declareStage(stage)
		}
		for i, n := range [len(outcomes)][2]uint64{{c.Sent, was.Sent}, {c.Filtered, was.Filtered},
			{c.Errors, was.Errors}, {c.Suppressed, was.Suppressed}, {c.Folded, was.Folded}} {
			if n[0] > n[1] {
				stage.counters.records[i].Add(float64(n[0] - n[1]))
			}
		}
		if c.Lives > was.Lives {
			stage.counters.lives.Add(float64(c.Lives - was.Lives))
		}
		stage.published = c
	}
}

// declare creates p's stages' series, at zero, before the plan is used
// (every series exists from the start), and what the enricher runs them
// with. Called before the plan is published (New, SetPlan).
func (s *selector) declare(p *Plan) {
	for _, stage := range p.Stages {
		s.declareStage(stage)
	}
	if p.Stages != nil {
		p.selecting = &planStages{sel: s, p: p}
	}
}

func (s *selector) declareStage(stage *Stage) {
	route := strconv.Itoa(stage.Route)
	stage.counters = &stageCounters{lives: s.lives.WithLabelValues(route)}
	for i, o := range outcomes {
		stage.counters.records[i] = s.records.WithLabelValues(route, o)
	}
	s.keys.WithLabelValues(route)
	s.open.WithLabelValues(route)
}

// gauges sets the gauges of every route to the sum over the live plans
// (two during a reload).
func (s *selector) gauges() {
	keys, open := map[int]int{}, map[int]int{}
	for _, q := range s.live {
		for _, stage := range q.Stages {
			keys[stage.Route] += stage.Sel.ActiveKeys()
			open[stage.Route] += stage.Sel.OpenLives()
		}
	}
	setGauges(s.keys, s.keysRoutes, keys)
	setGauges(s.open, s.opRoute, open)
}

// stageCounters are a stage's metric children, resolved once.
type stageCounters struct {
	records [len(outcomes)]prometheus.Counter
	lives   prometheus.Counter
}

// setGauges sets g's route gauges to vals, and to 0 those set before that
// vals no longer has.
func setGauges(g *prometheus.GaugeVec, set map[int]bool, vals map[int]int) {
	for r := range set {
		if _, ok := vals[r]; !ok {
			g.WithLabelValues(strconv.Itoa(r)).Set(0)
		}
	}
	for r, v := range vals {
		g.WithLabelValues(strconv.Itoa(r)).Set(float64(v))
		set[r] = true
	}
}

// addSelected stores what the routes' stages added since the last batch:
// in this batch when they are of its plan, else (a plan a reload
// replaced) in batches of their own for that plan's sinks, which a reload
// retires only once they are offered.
func (b *Bridge) addSelected(h *handling) {
	for _, a := range b.sel.take() {
		if a.p != h.p || a.done != nil {
			offerAdded(b.pool, a)
			continue
		}
		for i := range a.recs {
			b.store(h, &a.recs[i])
		}
	}
}
