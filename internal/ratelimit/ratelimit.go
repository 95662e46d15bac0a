// Package ratelimit is a route's rate limit: token buckets keyed by
// members of the record (per: [process.exe, process.uid]) that hold back
// what goes over the limit and count it, so that nothing is suppressed
// without a count.
//
// For every route, delivered + suppressed = offered: Allow says which,
// and every suppressed record is counted under its key until a report
// (Tick, Flush) hands the count out as an event.Suppressed, at most once
// per key per ReportEvery, and for every key at stop and at reload
// (Flush).
//
// # Memory
//
// A key's state is kept while it has tokens to win back or suppressed
// records to report: a key whose bucket is full again and has nothing
// to report is forgotten at the next Tick (it would start full anyway).
// At most MaxKeys keys are kept; the records of any other key share one
// overflow key (its own bucket and count, reported with overflow: true).
//
// Pairs stay whole: the exit of a process whose exec the route delivered
// is always delivered (not a thread's exit). The limiter remembers the
// last MaxPairs delivered execs, by entity id (or pid when the record has
// none), oldest forgotten first: only the exit of a process whose exec
// is older than the last MaxPairs delivered execs can be suppressed.
//
// The package is pure: time is passed in, nothing is read or written.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/where"
)

// Defaults and bounds.
const (
	DefaultMaxKeys     = 10000
	DefaultReportEvery = 10 * time.Second
	// MaxPairs is how many delivered execs a limiter remembers so that
	// their exits are delivered too.
	MaxPairs     = 65536
	maxKeysLimit = 1 << 20
)

// Config is a route's rate_limit.
type Config struct {
	// Per are the member paths of the key (process.exe, process.uid);
	// none: one key for the whole route.
	Per []string `mapstructure:"per"`
	// EventsPerSecond is the rate each key refills at.
	EventsPerSecond float64 `mapstructure:"events_per_second"`
	// Burst is each key's bucket: records a key may send at once.
	Burst int `mapstructure:"burst"`
	// MaxKeys bounds the keys kept; others share the overflow key.
	MaxKeys int `mapstructure:"max_keys"`
	// ReportEvery is the least time between two reports of one key.
	ReportEvery time.Duration `mapstructure:"report_every"`

	// Paths are Per parsed (Validate).
	Paths []where.Path `mapstructure:"-"`
	// pairs overrides MaxPairs (tests).
	pairs int
}

func (c *Config) maxPairs() int {
	if c.pairs > 0 {
		return c.pairs
	}
	return MaxPairs
}

// SetDefaults fills in max_keys and report_every.
func (c *Config) SetDefaults() {
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.ReportEvery == 0 {
		c.ReportEvery = DefaultReportEvery
	}
	if c.Burst == 0 {
		c.Burst = int(math.Ceil(c.EventsPerSecond))
	}
}

// Validate checks every key and parses Per in env; each error starts
// with the key's name ("per[1]: …").
func (c *Config) Validate(env *where.Env) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	c.Paths = c.Paths[:0]
	seen := map[string]bool{}
	for i, p := range c.Per {
		path, err := env.Path(p)
		switch {
		case err != nil:
			bad(fmt.Sprintf("per[%d]", i), "%v", err)
		case seen[p]:
			bad(fmt.Sprintf("per[%d]", i), "%q listed twice", p)
		default:
			c.Paths = append(c.Paths, path)
		}
		seen[p] = true
	}
	if !(c.EventsPerSecond > 0) || math.IsInf(c.EventsPerSecond, 0) {
		bad("events_per_second", "%v: want a rate above 0", c.EventsPerSecond)
	}
	if c.Burst < 1 {
		bad("burst", "%d: want at least 1", c.Burst)
	}
	if c.MaxKeys < 1 || c.MaxKeys > maxKeysLimit {
		bad("max_keys", "%d is outside 1..%d", c.MaxKeys, maxKeysLimit)
	}
	if c.ReportEvery <= 0 {
		bad("report_every", "must be positive")
	}
	return errors.Join(errs...)
}

// Limiter is one route's rate limit. It belongs to one goroutine.
type Limiter struct {
	route    int
	paths    []where.Path
	rate     float64 // tokens per ns
	burst    float64
	maxKeys  int
	every    int64
	keys     map[string]*bucket
	overflow *bucket
	pairs    pairs
	kbuf     []byte

	// Counters since New.
	offered, delivered, suppressed uint64
}

// bucket is one key's state.
type bucket struct {
	kv         []event.KeyValue
	tokens     float64
	last       int64 // when tokens was computed, Unix ns
	count      uint64
	from, to   int64
	lastReport int64
}

// New returns the limiter of route (its index, for the reports) from a
// validated c.
func New(route int, c *Config) *Limiter {
	return &Limiter{
		route: route, paths: c.Paths,
		rate: c.EventsPerSecond / 1e9, burst: float64(c.Burst),
		maxKeys: c.MaxKeys, every: int64(c.ReportEvery),
		keys:  map[string]*bucket{},
		pairs: newPairs(c.maxPairs()),
	}
}

// Allow takes a token from r's key at now (Unix ns, the record's receive
// time) and reports whether the route sends r; when it does not, r is
// counted under its key.
func (l *Limiter) Allow(r *fields.Record, now int64) bool {
	l.offered++
	pe := r.Proc.V
	if r.Proc.Set && pe.Event == "exit" && !pe.Thread.V && l.pairs.remove(processKey(r)) {
		l.delivered++
		return true
	}
	b := l.bucket(r, now)
	b.refill(now, l.rate, l.burst)
	if b.tokens >= 1 {
		b.tokens--
		l.delivered++
		if r.Proc.Set && pe.Event == "exec" {
			l.pairs.add(processKey(r))
		}
		return true
	}
	if b.count == 0 {
		b.from = now
	}
	b.count++
	b.to = max(b.to, now)
	l.suppressed++
	return false
}

func (b *bucket) refill(now int64, rate, burst float64) {
	if now > b.last {
		b.tokens = min(burst, b.tokens+float64(now-b.last)*rate)
		b.last = now
	}
}

// bucket finds or makes r's key's bucket.
func (l *Limiter) bucket(r *fields.Record, now int64) *bucket {
	l.kbuf = l.kbuf[:0]
	for _, p := range l.paths {
		v, ok := p.Value(r)
		if ok {
			l.kbuf = append(l.kbuf, '=')
			l.kbuf = strconv.AppendQuote(l.kbuf, v)
		} else {
			l.kbuf = append(l.kbuf, '-')
		}
	}
	if b := l.keys[string(l.kbuf)]; b != nil {
		return b
	}
	if len(l.keys) >= l.maxKeys {
		if l.overflow == nil {
			l.overflow = &bucket{tokens: l.burst, last: now}
		}
		return l.overflow
	}
	b := &bucket{tokens: l.burst, last: now}
	for _, p := range l.paths {
		if v, ok := p.Value(r); ok {
			b.kv = append(b.kv, event.KeyValue{Path: p.Name, Value: v})
		}
	}
	l.keys[string(l.kbuf)] = b
	return b
}

// Tick reports the keys with suppressed records whose last report is at
// least ReportEvery old, and forgets the keys that have nothing to
// report and a full bucket again. Call it about once a second.
func (l *Limiter) Tick(now int64) []event.Suppressed {
	var out []event.Suppressed
	report := func(b *bucket, overflow bool) {
		if b.count > 0 && (b.lastReport == 0 || now-b.lastReport >= l.every) {
			out = append(out, l.report(b, overflow))
			b.lastReport = now
		}
	}
	for k, b := range l.keys {
		report(b, false)
		b.refill(now, l.rate, l.burst)
		if b.count == 0 && b.tokens >= l.burst && (b.lastReport == 0 || now-b.lastReport >= l.every) {
			delete(l.keys, k)
		}
	}
	if l.overflow != nil {
		report(l.overflow, true)
	}
	return out
}

// Flush reports every key with suppressed records, whatever its last
// report: at stop and at reload.
func (l *Limiter) Flush() []event.Suppressed {
	var out []event.Suppressed
	for _, b := range l.keys {
		if b.count > 0 {
			out = append(out, l.report(b, false))
		}
	}
	if l.overflow != nil && l.overflow.count > 0 {
		out = append(out, l.report(l.overflow, true))
	}
	return out
}

func (l *Limiter) report(b *bucket, overflow bool) event.Suppressed {
	s := event.Suppressed{Route: l.route, Key: b.kv, Overflow: overflow, Count: b.count, From: b.from, To: b.to}
	b.count, b.from, b.to = 0, 0, 0
	return s
}

// Stats are a limiter's counts.
type Stats struct {
	Offered, Delivered, Suppressed uint64
	// ActiveKeys are the keys the limiter holds state for: keys that
	// sent or suppressed within the time their bucket takes to refill,
	// or that have suppressed records to report (the overflow key
	// counts once it is used).
	ActiveKeys int
	// Pending are suppressed records not reported yet.
	Pending uint64
}

// Stats returns the counts since New.
func (l *Limiter) Stats() Stats {
	s := Stats{Offered: l.offered, Delivered: l.delivered, Suppressed: l.suppressed, ActiveKeys: len(l.keys)}
	for _, b := range l.keys {
		s.Pending += b.count
	}
	if l.overflow != nil {
		s.ActiveKeys++
		s.Pending += l.overflow.count
	}
	return s
}

// processKey identifies r's process: its entity id, else its pid.
func processKey(r *fields.Record) string {
	if id, ok := r.Process.V.EntityID.Get(); ok && r.Process.Set {
		return id
	}
	if pid, ok := r.Proc.V.TGID.Get(); ok {
		return "pid:" + strconv.FormatInt(pid, 10)
	}
	return ""
}

// pairs is a bounded set of processes whose exec was delivered, oldest
// forgotten first.
type pairs struct {
	set  map[string]int // → its slot in ring
	ring []string
	max  int
	next int
}

func newPairs(n int) pairs {
	return pairs{set: map[string]int{}, ring: make([]string, 0, min(n, 1024)), max: n}
}

func (p *pairs) add(k string) {
	if k == "" {
		return
	}
	if _, ok := p.set[k]; ok {
		return
	}
	slot := len(p.ring)
	if slot < p.max {
		p.ring = append(p.ring, k)
	} else {
		slot = p.next
		if old := p.ring[slot]; p.set[old] == slot {
			delete(p.set, old)
		}
		p.ring[slot] = k
		p.next = (p.next + 1) % p.max
	}
	p.set[k] = slot
}

// len is how many processes are remembered.
func (p *pairs) len() int { return len(p.set) }

// remove reports whether k was there (its ring slot stays until reused).
func (p *pairs) remove(k string) bool {
	if k == "" {
		return false
	}
	if _, ok := p.set[k]; !ok {
		return false
	}
	delete(p.set, k)
	return true
}

// KeyString is the key of s as "process.exe=/usr/bin/cc process.uid=0",
// for logs.
func KeyString(s event.Suppressed) string {
	if s.Overflow {
		return "overflow"
	}
	parts := make([]string, len(s.Key))
	for i, kv := range s.Key {
		parts[i] = kv.Path + "=" + kv.Value
	}
	return strings.Join(parts, " ")
}
