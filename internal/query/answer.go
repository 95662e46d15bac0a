package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/where"
)

// SnapshotFunc returns a snapshot of the process table and, when the table
// may be incomplete, why ("off", "seeding", "resync"; see TableState).
type SnapshotFunc func(ctx context.Context) (s *proctable.Snapshot, incomplete string, err error)

// Filter is a compiled where expression (internal/where): Eval reports
// whether it selects a row.
type Filter interface {
	Eval(r *fields.Record) (bool, error)
}

// CompileFunc compiles a where expression. ancestors reports whether the
// expression reads ancestors (they are then given to it).
type CompileFunc func(src string) (f Filter, ancestors bool, err error)

// Work bounds.
const (
	// DefaultWork is how long a daemon works on an answer when the asker
	// does not say how long it waits.
	DefaultWork = 2 * time.Second
	// MaxWork bounds any answer's work, whatever the asker says.
	MaxWork = 30 * time.Second
	// maxAncestors bounds the ancestors a where expression is given (a
	// route's ancestors are bounded the same way).
	maxAncestors = 64
	// checkEvery is how many rows are examined between two looks at the
	// deadline.
	checkEvery = 256
)

// ResponderConfig configures a Responder.
type ResponderConfig struct {
	Host, Version, Commit string
	Started               time.Time
	Snapshot              SnapshotFunc
	// Compile compiles ps's where expressions; nil refuses them.
	Compile CompileFunc
	// Loss reports the daemon's loss accounting for info; nil: zeros.
	Loss func() Loss
	// MaxRows and MaxPerSecond are query.max_rows and
	// query.max_per_second.
	MaxRows, MaxPerSecond int
}

// Responder answers questions about one host's process table. Its answers
// are bounded: at most MaxRows rows and the byte size the caller gives, at
// most MaxPerSecond answers a second, one answer worked on at a time (so a
// question costs at most one CPU, never the enricher's or the reader's
// time: the table is read from a snapshot), and never past the asker's
// timeout. The walk over the table runs on a thread at the lowest CPU
// priority (nice 19 on Linux) and yields the CPU every 256 rows. It is
// safe for concurrent use.
type Responder struct {
	cfg     ResponderConfig
	enc     *event.Encoder
	limiter *rate.Limiter
	busy    chan struct{}
	// normalPriority walks the table at the caller's priority instead of
	// the lowest (BenchmarkReaderDuringPS compares the two).
	normalPriority bool
}

// NewResponder returns a Responder.
func NewResponder(cfg ResponderConfig) *Responder {
	if cfg.MaxRows < 1 {
		cfg.MaxRows = DefaultMaxRows
	}
	if cfg.MaxPerSecond < 1 {
		cfg.MaxPerSecond = DefaultMaxPerSecond
	}
	return &Responder{
		cfg:     cfg,
		enc:     event.NewEncoder(cfg.Host),
		limiter: rate.NewLimiter(rate.Limit(cfg.MaxPerSecond), cfg.MaxPerSecond),
		busy:    make(chan struct{}, 1),
	}
}

// Host is the host the Responder answers for.
func (r *Responder) Host() string { return r.cfg.Host }

// Answer answers op with the request in body, in at most maxBytes bytes
// of encoded answer. It returns nil when the question is not for this
// host (its host glob does not match): the host stays silent. Bad
// requests, the rate limit and a missing table give answers with Error
// and Code set.
func (r *Responder) Answer(ctx context.Context, op string, body []byte, maxBytes int) *Answer {
	a := &Answer{Host: r.cfg.Host, Version: r.cfg.Version}
	req, err := parseRequest(op, body)
	if err == nil && req.Host != "" {
		var ok bool
		if ok, err = path.Match(req.Host, r.cfg.Host); err == nil && !ok {
			return nil
		} else if err != nil {
			err = fmt.Errorf("host: %q: %w", req.Host, err)
		}
	}
	if err != nil {
		return fail(a, CodeBadRequest, err)
	}
	if !r.limiter.Allow() {
		return fail(a, CodeRateLimited, fmt.Errorf("rate limited: this host answers at most %d questions a second (query.max_per_second)", r.cfg.MaxPerSecond))
	}
	work := DefaultWork
	if req.TimeoutMs > 0 {
		work = min(time.Duration(req.TimeoutMs)*time.Millisecond, MaxWork)
	}
	// What is cut short still has to reach the asker in time.
	work -= min(work/10, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(ctx, work)
	defer cancel()
	var filter Filter
	var needAncestors bool
	if req.Where != "" {
		if r.cfg.Compile == nil {
			return fail(a, CodeBadRequest, errors.New("where: this daemon cannot filter"))
		}
		if filter, needAncestors, err = r.cfg.Compile(req.Where); err != nil {
			return fail(a, CodeBadRequest, fmt.Errorf("where: %w", err))
		}
	}
	// One answer at a time: a question costs at most one CPU.
	select {
	case r.busy <- struct{}{}:
		defer func() { <-r.busy }()
	case <-ctx.Done():
		return fail(a, CodeUnavailable, errors.New("busy with other questions until the asker's timeout"))
	}
	snap, incomplete, err := r.cfg.Snapshot(ctx)
	if err == nil && snap == nil {
		err = errors.New("no table")
	}
	if err != nil {
		return fail(a, CodeUnavailable, fmt.Errorf("process table: %w", err))
	}
	now := time.Now()
	a.Time = event.FormatTime(now.UnixNano())
	a.Table = tableState(snap, incomplete)
	if op == OpInfo {
		a.Info = r.info(snap)
		return a
	}
	if incomplete == "off" {
		return fail(a, CodeUnavailable, errors.New("no process table: no route has enrich: true"))
	}
	q := &question{r: r, ctx: ctx, a: a, req: req, snap: snap,
		maxRows: r.cfg.MaxRows, maxBytes: maxBytes, filter: filter, needAncestors: needAncestors}
	if req.MaxRows > 0 {
		q.maxRows = min(q.maxRows, req.MaxRows)
	}
	walk := q.lineage
	switch op {
	case OpPS:
		walk = q.ps
	case OpTree:
		walk = q.tree
	}
	if r.normalPriority {
		walk()
	} else {
		atLowPriority(walk)
	}
	return a
}

func fail(a *Answer, code int, err error) *Answer {
	a.Code, a.Error = code, err.Error()
	return a
}

// parseRequest decodes body (empty: no members) and refuses members op
// does not use.
func parseRequest(op string, body []byte) (Request, error) {
	var req Request
	if !slices.Contains(Ops, op) {
		return req, fmt.Errorf("%q is not a question: want %s", op, strings.Join(Ops, ", "))
	}
	if len(bytes.TrimSpace(body)) > 0 {
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(&req); err != nil {
			return req, fmt.Errorf("request: %w", err)
		}
	}
	var unused []string
	use := func(name string, set, allowed bool) {
		if set && !allowed {
			unused = append(unused, name)
		}
	}
	use("where", req.Where != "", op == OpPS)
	use("root", req.Root != "", op == OpTree)
	use("depth", req.Depth != 0, op == OpTree || op == OpLineage)
	use("entity_id", req.EntityID != "", op == OpLineage)
	use("max_rows", req.MaxRows != 0, op != OpInfo)
	if len(unused) > 0 {
		return req, fmt.Errorf("request: %s: not a member of %s's request", strings.Join(unused, ", "), op)
	}
	switch {
	case req.Depth < 0:
		return req, fmt.Errorf("request: depth %d: must not be negative", req.Depth)
	case req.MaxRows < 0:
		return req, fmt.Errorf("request: max_rows %d: must not be negative", req.MaxRows)
	case req.TimeoutMs < 0:
		return req, fmt.Errorf("request: timeout_ms %d: must not be negative", req.TimeoutMs)
	case op == OpLineage && req.EntityID == "":
		return req, errors.New("request: entity_id: required")
	}
	return req, nil
}

func tableState(s *proctable.Snapshot, incomplete string) *TableState {
	st := &TableState{State: "ok", Processes: s.Stats.Processes}
	if incomplete != "" {
		st.State, st.Incomplete = incomplete, true
	}
	return st
}

func (r *Responder) info(s *proctable.Snapshot) *Info {
	in := &Info{Version: r.cfg.Version, Commit: r.cfg.Commit, Processes: s.Stats.Processes, Threads: s.Stats.Threads,
		MaxEntries: s.MaxEntries, Evicted: s.Stats.Evicted, Exited: s.Stats.Exited}
	if !r.cfg.Started.IsZero() {
		in.Started = r.cfg.Started.UTC().Format(time.RFC3339)
	}
	for _, e := range s.Entries {
		switch {
		case e.P.Exited:
		case e.P.Seeded:
			in.Seeded++
		default:
			in.Observed++
		}
	}
	if r.cfg.Loss != nil {
		in.Loss = r.cfg.Loss()
	}
	return in
}

// question is one answer being worked on.
type question struct {
	r             *Responder
	ctx           context.Context
	a             *Answer
	req           Request
	snap          *proctable.Snapshot
	maxRows       int
	maxBytes      int
	size          int // bytes of the answer so far (an estimate of the envelope plus the rows)
	filter        Filter
	needAncestors bool
	rec           fields.Record
	buf           bytes.Buffer
	jenc          *json.Encoder
	// parents maps each process of the snapshot to its parent.
	parents map[*proctable.Process]*proctable.Process
}

// late reports, every checkEvery calls, whether the asker's timeout has
// passed.
func (q *question) late(i int) bool {
	if i%checkEvery != checkEvery-1 {
		return false
	}
	// Let the reader, the enricher and the sinks run: an answer over a
	// big table is work in the background, not theirs to wait for.
	runtime.Gosched()
	return q.ctx.Err() != nil
}

// truncate marks the answer cut by why.
func (q *question) truncate(why string) {
	if !q.a.Truncated {
		q.a.Truncated, q.a.TruncatedBy = true, why
	}
}

// emit adds p's row unless the answer is full; it reports whether there is
// room for more.
func (q *question) emit(p, parent *proctable.Process) bool {
	if len(q.a.Rows) >= q.maxRows {
		q.truncate("max_rows")
		return false
	}
	q.r.enc.TableRow(q.a.Time, p, parent, nil, &q.rec)
	q.buf.Reset()
	if q.jenc == nil {
		q.jenc = json.NewEncoder(&q.buf)
		q.jenc.SetEscapeHTML(false) // as the line encoder writes them
	}
	if err := q.jenc.Encode(&q.rec); err != nil {
		return true // a row the model cannot encode: left out
	}
	row := bytes.TrimSuffix(q.buf.Bytes(), []byte("\n"))
	if q.size == 0 {
		q.size = envelope
	}
	if q.maxBytes > 0 && q.size+len(row)+1 > q.maxBytes {
		q.truncate("max_bytes")
		return false
	}
	q.size += len(row) + 1
	q.a.Rows = append(q.a.Rows, json.RawMessage(bytes.Clone(row)))
	return true
}

// envelope is room kept for an answer's members besides its rows.
const envelope = 1024

// parentOf returns p's parent in the snapshot.
func (q *question) parentOf(p *proctable.Process) *proctable.Process {
	if q.parents == nil {
		q.parents = make(map[*proctable.Process]*proctable.Process, len(q.snap.Entries))
		for _, e := range q.snap.Entries {
			if e.Parent != nil {
				q.parents[e.P] = e.Parent
			}
		}
	}
	return q.parents[p]
}

// ancestors appends p's ancestors to dst, the parent first, at most n.
func (q *question) ancestors(dst []*proctable.Process, p *proctable.Process, n int) []*proctable.Process {
	for a := q.parentOf(p); a != nil && len(dst) < n; a = q.parentOf(a) {
		dst = append(dst, a)
	}
	return dst
}

// ps answers with the live processes the where expression selects, by
// pid.
func (q *question) ps() {
	entries := q.snap.Entries
	var matched []proctable.Entry
	if q.filter == nil {
		for _, e := range entries {
			if !e.P.Exited {
				matched = append(matched, e)
			}
		}
	} else {
		var anc []*proctable.Process
		for i, e := range entries {
			if e.P.Exited {
				continue
			}
			if q.late(i) {
				q.truncate("time")
				break
			}
			anc = anc[:0]
			if q.needAncestors {
				anc = q.ancestors(anc, e.P, maxAncestors)
			}
			q.r.enc.TableRow(q.a.Time, e.P, e.Parent, anc, &q.rec)
			ok, err := q.filter.Eval(&q.rec)
			if err != nil {
				if q.a.EvalErrors == 0 {
					q.a.EvalError = err.Error()
				}
				q.a.EvalErrors++
				continue
			}
			if ok {
				matched = append(matched, e)
			}
		}
	}
	slices.SortFunc(matched, func(a, b proctable.Entry) int { return int(a.P.TGID) - int(b.P.TGID) })
	q.a.Matched = len(matched)
	for _, e := range matched {
		if !q.emit(e.P, e.Parent) {
			break
		}
	}
}

// children maps each process of the snapshot to its children, by pid.
func (q *question) children() map[*proctable.Process][]*proctable.Process {
	kids := make(map[*proctable.Process][]*proctable.Process)
	for _, e := range q.snap.Entries {
		kids[e.Parent] = append(kids[e.Parent], e.P) // nil: the roots
	}
	for _, k := range kids {
		slices.SortFunc(k, func(a, b *proctable.Process) int { return int(a.TGID) - int(b.TGID) })
	}
	return kids
}

// find returns the process root names: an entity id, or a pid.
func (q *question) find(root string) (*proctable.Process, error) {
	pid, perr := strconv.ParseUint(root, 10, 32)
	if perr != nil && strings.Count(root, ":") != 2 {
		return nil, fmt.Errorf("root: %q is neither a pid nor an entity id (<boot id>:<pid>:<start>)", root)
	}
	var exited *proctable.Process // a pid's live process first
	for _, e := range q.snap.Entries {
		if (perr == nil && e.P.TGID == uint32(pid)) || e.P.EntityID == root {
			if !e.P.Exited {
				return e.P, nil
			}
			exited = e.P
		}
	}
	return exited, nil
}

// tree answers with the subtree under the root (every tree without one),
// depth first, children by pid; processes the table remembers after their
// exit are in it, marked, where they link live ones or were asked for.
func (q *question) tree() {
	kids := q.children()
	var roots []*proctable.Process
	for _, p := range kids[nil] {
		if !p.Exited || len(kids[p]) > 0 {
			roots = append(roots, p)
		}
	}
	if q.req.Root != "" {
		p, err := q.find(q.req.Root)
		if err != nil {
			fail(q.a, CodeBadRequest, err)
			return
		}
		if p == nil {
			return // not here: no rows
		}
		roots = []*proctable.Process{p}
	}
	full := false
	for _, p := range roots {
		if !q.walk(kids, p, q.parentOf(p), 0, &full) {
			return
		}
	}
}

// walk emits p and its descendants down to the request's depth, counting
// every one in Matched. Once the answer is full it only counts; it returns
// false when the asker's timeout passed.
func (q *question) walk(kids map[*proctable.Process][]*proctable.Process, p, parent *proctable.Process, depth int, full *bool) bool {
	q.a.Matched++
	if q.late(q.a.Matched) {
		q.truncate("time")
		return false
	}
	if !*full && !q.emit(p, parent) {
		*full = true
	}
	if q.req.Depth > 0 && depth >= q.req.Depth {
		return true
	}
	for _, c := range kids[p] {
		if !q.walk(kids, c, p, depth+1, full) {
			return false
		}
	}
	return true
}

// lineage answers with the process's ancestors (up to the table's root,
// the farthest first), the process, and its descendants.
func (q *question) lineage() {
	var p *proctable.Process
	for _, e := range q.snap.Entries {
		if e.P.EntityID == q.req.EntityID {
			p = e.P
			break
		}
	}
	if p == nil {
		return // not here: no rows
	}
	chain := q.ancestors(nil, p, len(q.snap.Entries))
	full := false
	for i := len(chain) - 1; i >= 0; i-- {
		q.a.Matched++
		if !full && !q.emit(chain[i], q.parentOf(chain[i])) {
			full = true
		}
	}
	q.walk(q.children(), p, q.parentOf(p), 0, &full)
}

// WhereCompiler returns the CompileFunc of the where language (routes'
// where, tap --where): one environment for every question.
func WhereCompiler() (CompileFunc, error) {
	env, err := where.NewEnv()
	if err != nil {
		return nil, err
	}
	return func(src string) (Filter, bool, error) {
		x, err := env.Compile(src)
		if err != nil {
			return nil, false, err
		}
		return x, x.Reads("ancestors") || x.Reads(where.RecordVar), nil
	}, nil
}
