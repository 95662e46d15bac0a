// Package selection is a route's selection stage: fold, where and rate
// limit, in that order, over records of the field model. The pipeline
// calls Select for every record the route matched (after enrichment),
// Tick about once a second, and Flush at stop and at reload; what they
// return beside the records (life and suppression records) goes to the
// route's sinks.
//
// For each record offered: a record a fold takes is folded; otherwise
// where decides (an evaluation error selects nothing and is counted
// apart), then the rate limit: every offered record is counted exactly
// once as folded, filtered, an error, suppressed or sent. A life a fold
// emits goes through where and the rate limit like a record. Loss and gap
// markers pass every step; an exit_lost record passes the rate limit but
// not a where that rejects it; suppression records pass.
//
// The package is pure: time is passed in. A Route belongs to one
// goroutine.
package selection

import (
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/fold"
	"github.com/cnbridged/cnbridged/internal/ratelimit"
	"github.com/cnbridged/cnbridged/internal/where"
)

// Spec is what a route asks for (config.Route's where, rate_limit and
// fold, parsed).
type Spec struct {
	Index     int               // the route's index in the config
	Where     *where.Expr       // nil: every record
	RateLimit *ratelimit.Config // validated; nil: no limit
	Fold      bool              // fold: lifecycle
}

// Route is one route's stage.
type Route struct {
	where *where.Expr
	limit *ratelimit.Limiter
	fold  *fold.Folder
	// Counts since New.
	Counts Counts
}

// Counts are a route's counts. Offered = Folded + Filtered + Errors +
// Suppressed + Sent, where Offered counts the records Select was given
// and the lives the fold emitted.
type Counts struct {
	Offered, Folded, Filtered, Errors, Suppressed, Sent uint64
	// Lives are the life records the fold emitted (counted in Offered).
	Lives uint64
}

// New returns the stage of a route, or nil when it asks for nothing.
func New(s Spec) *Route {
	if s.Where == nil && s.RateLimit == nil && !s.Fold {
		return nil
	}
	r := &Route{where: s.Where}
	if s.RateLimit != nil {
		r.limit = ratelimit.New(s.Index, s.RateLimit)
	}
	if s.Fold {
		r.fold = fold.New()
	}
	return r
}

// Select decides whether the route sends rec (received at now, Unix ns),
// and returns the records to send after it. err is where's evaluation
// error, when rec was not sent because of one (for a rate-limited log).
func (s *Route) Select(rec *fields.Record, now int64) (send bool, extra []event.Record, err error) {
	s.Counts.Offered++
	if s.fold != nil {
		folded, lives := s.fold.Add(rec)
		for i := range lives {
			s.Counts.Offered++
			s.Counts.Lives++
			ok, e := s.decide(&lives[i], now)
			if ok {
				extra = append(extra, lifeRecord(&lives[i], now))
			}
			if e != nil {
				err = e
			}
		}
		if folded {
			s.Counts.Folded++
			return false, extra, err
		}
	}
	ok, e := s.decide(rec, now)
	if e != nil {
		err = e
	}
	return ok, extra, err
}

// decide applies where and the rate limit to one record.
func (s *Route) decide(rec *fields.Record, now int64) (bool, error) {
	switch rec.Type.V {
	case fields.TypeLoss, fields.TypeGap, fields.TypeSuppressed:
		if rec.Type.Set {
			s.Counts.Sent++
			return true, nil
		}
	}
	if s.where != nil {
		ok, err := s.where.Eval(rec)
		switch {
		case err != nil:
			s.Counts.Errors++
			return false, err
		case !ok:
			s.Counts.Filtered++
			return false, nil
		}
	}
	if s.limit != nil && rec.Type.V != fields.TypeExitLost && !s.limit.Allow(rec, now) {
		s.Counts.Suppressed++
		return false, nil
	}
	s.Counts.Sent++
	return true, nil
}

// Tick returns the suppression reports that are due.
func (s *Route) Tick(now int64) []event.Record {
	if s.limit == nil {
		return nil
	}
	return suppressedRecords(s.limit.Tick(now), now)
}

// Flush returns every open life (marked open, through where and the rate
// limit) and then every pending suppression report: at stop and at
// reload, after which the route starts again empty.
func (s *Route) Flush(now int64) []event.Record {
	var out []event.Record
	if s.fold != nil {
		lives := s.fold.Flush(now)
		for i := range lives {
			s.Counts.Offered++
			s.Counts.Lives++
			if ok, _ := s.decide(&lives[i], now); ok {
				out = append(out, lifeRecord(&lives[i], now))
			}
		}
	}
	if s.limit != nil {
		out = append(out, suppressedRecords(s.limit.Flush(), now)...)
	}
	return out
}

// ActiveKeys is the rate limit's active keys (0 without one).
func (s *Route) ActiveKeys() int {
	if s.limit == nil {
		return 0
	}
	return s.limit.Stats().ActiveKeys
}

// OpenLives is how many lives the fold holds (0 without one).
func (s *Route) OpenLives() int {
	if s.fold == nil {
		return 0
	}
	return s.fold.Open()
}

func suppressedRecords(ss []event.Suppressed, now int64) []event.Record {
	out := make([]event.Record, len(ss))
	for i := range ss {
		out[i] = event.Record{Kind: event.KindSuppressed, Time: now, Suppressed: &ss[i]}
	}
	return out
}

// lifeRecord is a life as a record for the sinks, at its time (its
// exit's receive time), else now.
func lifeRecord(l *fields.Record, now int64) event.Record {
	at := now
	if t, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
		at = t.UnixNano()
	}
	return event.Record{Kind: event.KindLife, Time: at, Life: &event.Life{
		Process: l.Process, Parent: l.Parent, Ancestors: l.Ancestors, Life: l.Life.V}}
}
