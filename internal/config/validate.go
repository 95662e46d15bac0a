package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/where"
)

// Validate reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var v validation
	c.validateLog(&v)
	c.validateListener(&v)
	c.validateEnrich(&v)
	c.validateDaemon(&v)
	c.validateSinks(&v)
	c.validateRoutes(&v)
	c.validateRequests(&v)
	for _, err := range flatten(c.Query.Validate()) {
		v.errs = append(v.errs, fmt.Errorf("query.%w", err))
	}
	return errors.Join(v.errs...)
}

// validation collects Validate's problems, in the order of the keys.
type validation struct{ errs []error }

// bad records a problem with key.
func (v *validation) bad(key, format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
}

// validateLog checks log.* and host.
func (c *Config) validateLog(v *validation) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		v.bad("log.format", "%q is not one of auto, json, console", c.Log.Format)
	}
	if c.Host == "" {
		v.bad("host", "empty")
	}
}

// validateListener checks listener.* and sets its parsed fields (Trusted,
// ProcEventSet).
func (c *Config) validateListener(v *validation) {
	l := c.Listener
	if len(l.Groups) == 0 {
		v.bad("listener.groups", "no groups: join at least one of 1..32")
	}
	seen := map[int]bool{}
	for i, g := range l.Groups {
		if g < 1 || g > 32 {
			v.bad(fmt.Sprintf("listener.groups[%d]", i), "group %d is outside 1..32", g)
		}
		if seen[g] {
			v.bad(fmt.Sprintf("listener.groups[%d]", i), "group %d listed twice", g)
		}
		seen[g] = true
	}
	if l.ReceiveBufferBytes < 64<<10 || l.ReceiveBufferBytes > 1<<30 {
		v.bad("listener.receive_buffer_bytes", "%d is outside 65536..1073741824", l.ReceiveBufferBytes)
	}
	if l.BatchSize < 1 || l.BatchSize > 1024 {
		v.bad("listener.batch_size", "%d is outside 1..1024", l.BatchSize)
	}
	c.Listener.Trusted = make([]router.Pattern, 0, len(l.UserspaceSenders))
	for i, p := range l.UserspaceSenders {
		pat, err := router.ParsePattern(p)
		if err != nil {
			v.bad(fmt.Sprintf("listener.userspace_senders[%d]", i), "%v", err)
		}
		c.Listener.Trusted = append(c.Listener.Trusted, pat)
	}
	if l.HandshakeTimeout <= 0 {
		v.bad("listener.handshake_timeout", "must be positive")
	}
	if p := l.ReaderPriority; p < 0 || p > 99 {
		v.bad("listener.reader_priority", "%d is outside 0..99", p)
	}
	if set, err := router.ParseEvents(l.ProcEvents); err != nil {
		v.bad("listener.proc_events", "%v", err)
	} else {
		c.Listener.ProcEventSet = set
	}
}

// validateEnrich checks the enrichment and process table keys.
func (c *Config) validateEnrich(v *validation) {
	if c.EnrichMaxCmdlineBytes < 1 || c.EnrichMaxCmdlineBytes > 1<<20 {
		v.bad("enrich_max_cmdline_bytes", "%d is outside 1..1048576", c.EnrichMaxCmdlineBytes)
	}
	if c.ProcessTable.MaxEntries < 1 {
		v.bad("process_table.max_entries", "must be at least 1")
	}
	if n := c.ProcessTable.ExecReaders; n < 1 || n > 64 {
		v.bad("process_table.exec_readers", "%d is outside 1..64", n)
	}
	if d := c.ProcessTable.CaptureBudget; d < 0 || d > MaxCaptureBudget {
		v.bad("process_table.capture_budget", "%s is outside 0s..%s", d, MaxCaptureBudget)
	}
	for i, pat := range c.EnrichRedact {
		key := fmt.Sprintf("enrich_redact[%d]", i)
		if re, err := regexp.Compile(pat); err != nil {
			v.bad(key, "%q is not an RE2 pattern: %v", pat, err)
		} else if re.NumSubexp() < 1 {
			v.bad(key, "%q has no capture group: the first group is what is replaced by *****", pat)
		}
	}
	if c.EnrichQueueSize < 1 {
		v.bad("enrich_queue_size", "must be at least 1")
	}
}

// validateDaemon checks shutdown_timeout, ledger.*, metrics.* and tap.*
// (each sink's drain_timeout against shutdown_timeout is its own check).
func (c *Config) validateDaemon(v *validation) {
	if c.ShutdownTimeout <= 0 {
		v.bad("shutdown_timeout", "must be positive")
	}
	if c.Ledger.ReorderWindow < 0 || c.Ledger.ReorderWindow > 64 {
		v.bad("ledger.reorder_window", "%d is outside 0..64", c.Ledger.ReorderWindow)
	}
	if c.Ledger.MaxStreams < 1 {
		v.bad("ledger.max_streams", "must be at least 1")
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			v.bad("metrics.listen", "%q: want host:port", c.Metrics.Listen)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.bad("metrics.listen", "%q: bad port", c.Metrics.Listen)
		}
	}
	if c.Tap.Socket != "" {
		if c.Tap.ClientBuffer < 1 {
			v.bad("tap.client_buffer", "must be at least 1")
		}
		if c.Tap.QueueSize < 1 {
			v.bad("tap.queue_size", "must be at least 1")
		}
	}
}

// validateSinks checks sinks.*, each by its type's own validation.
func (c *Config) validateSinks(v *validation) {
	if len(c.Sinks) == 0 {
		v.bad("sinks", "no sinks defined")
	}
	if len(c.Sinks) > router.MaxSinks {
		v.bad("sinks", "%d sinks; at most %d", len(c.Sinks), router.MaxSinks)
	}
	paths := map[string]string{} // file sink path → the first sink writing it
	for _, name := range c.SinkNames() {
		if f := c.Sinks[name].File(); f != nil && f.Path != "" {
			p := filepath.Clean(f.Path)
			if first, ok := paths[p]; ok {
				v.bad("sinks."+name+".path", "%q is also sinks.%s's file: two writers would interleave their lines (each file sink locks its file)", f.Path, first)
			} else {
				paths[p] = name
			}
		}
		v.errs = append(v.errs, c.Sinks[name].validate("sinks."+name, name, c.daemonKeys())...)
	}
}

// validateRoutes checks routes[*] and sets their parsed fields (Pattern,
// EventSet).
func (c *Config) validateRoutes(v *validation) {
	if len(c.Routes) == 0 {
		v.bad("routes", "no routes: nothing would be published")
	}
	var env *where.Env
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		pat, err := router.ParsePattern(r.Match)
		if err != nil {
			v.bad(key+".match", "%v", err)
		} else {
			c.Routes[i].Pattern = pat
		}
		neverProc := err == nil && !pat.Matches(cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc})
		if len(r.Events) > 0 {
			if set, err := router.ParseEvents(r.Events); err != nil {
				v.bad(key+".events", "%v", err)
			} else {
				c.Routes[i].EventSet, c.Routes[i].HasEvents = set, true
			}
		}
		if len(r.Sinks) == 0 {
			v.bad(key+".sinks", "no sinks named")
		}
		if r.Enrich && neverProc {
			v.bad(key+".enrich", "applies to process events only, and match %q never matches 1.1", r.Match)
		}
		switch {
		case r.Ancestors < 0 || r.Ancestors > MaxAncestors:
			v.bad(key+".ancestors", "%d is outside 0..%d", r.Ancestors, MaxAncestors)
		case r.Ancestors > 0 && !r.Enrich:
			v.bad(key+".ancestors", "needs enrich: true")
		}
		if !r.ThreadsOn() && neverProc {
			v.bad(key+".threads", "applies to process events only, and match %q never matches 1.1", r.Match)
		}
		for j, s := range r.Sinks {
			if _, ok := c.Sinks[s]; !ok {
				v.bad(fmt.Sprintf("%s.sinks[%d]", key, j), "no sink named %q", s)
			}
		}
		c.Routes[i].WhereExpr = c.validateWhere(v, key, r, &env)
		c.validateRateLimit(v, key, r, &env)
		switch {
		case r.Fold == "":
		case r.Fold != FoldLifecycle:
			v.bad(key+".fold", "%q is not lifecycle", r.Fold)
		case !r.Enrich:
			v.bad(key+".fold", "lifecycle needs enrich: true (a life is folded by the process's entity id)")
		}
	}
}

// FoldLifecycle is a route's fold: lifecycle.
const FoldLifecycle = "lifecycle"

// whereEnv returns env, building it on first use.
func whereEnv(v *validation, key string, env **where.Env) *where.Env {
	if *env == nil {
		e, err := where.NewEnv()
		if err != nil {
			v.bad(key, "%v", err)
			return nil
		}
		*env = e
	}
	return *env
}

// validateRateLimit checks a route's rate_limit by its own Validate, and
// that the route carries the members its key reads.
func (c *Config) validateRateLimit(v *validation, key string, r Route, env **where.Env) {
	if r.RateLimit == nil {
		return
	}
	key += ".rate_limit"
	e := whereEnv(v, key, env)
	if e == nil {
		return
	}
	for i, p := range r.RateLimit.Per {
		for _, root := range enrichRoots {
			if (p == root || strings.HasPrefix(p, root+".")) && !r.Enrich {
				v.bad(fmt.Sprintf("%s.per[%d]", key, i), "%s needs enrich: true", p)
			}
		}
	}
	for _, err := range flatten(r.RateLimit.Validate(e)) {
		v.errs = append(v.errs, fmt.Errorf("%s.%w", key, err))
	}
}

// enrichRoots are the members only the process table gives a record.
var enrichRoots = []string{"process", "parent", "ancestors"}

// validateWhere compiles a route's where in env (built on first use) and
// checks that the route carries what it reads.
func (c *Config) validateWhere(v *validation, key string, r Route, env **where.Env) *where.Expr {
	if r.Where == "" {
		return nil
	}
	key += ".where"
	e := whereEnv(v, key, env)
	if e == nil {
		return nil
	}
	x, err := e.Compile(r.Where)
	if err != nil {
		for _, e := range flatten(err) {
			v.bad(key, "%v", e)
		}
		return nil
	}
	ok := true
	if r.Fold == FoldLifecycle && x.Reads("proc") {
		v.bad(key, "reads %s, but a fold: lifecycle route's where sees life records, which have no proc (life.execs, life.exit_status…)", firstUnder(x.Paths, "proc"))
		ok = false
	}
	for _, root := range enrichRoots {
		if !x.Reads(root) {
			continue
		}
		switch {
		case !r.Enrich:
			v.bad(key, "reads %s, which needs enrich: true", firstUnder(x.Paths, root))
			ok = false
		case root == "ancestors" && r.Ancestors == 0:
			v.bad(key, "reads %s but the route carries none (ancestors: 0)", firstUnder(x.Paths, root))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return x
}

// firstUnder is the first of paths at or under root.
func firstUnder(paths []string, root string) string {
	for _, p := range paths {
		if p == root || strings.HasPrefix(p, root+".") {
			return p
		}
	}
	return root
}

// validateRequests checks requests[*] and sets their parsed fields (CnID,
// NATSSubject).
func (c *Config) validateRequests(v *validation) {
	natsSink := func(name string) bool {
		s := c.Sinks[name]
		return s != nil && s.Type == "nats"
	}
	for i := range c.Requests {
		r := &c.Requests[i]
		for _, err := range flatten(r.Validate(natsSink)) {
			v.errs = append(v.errs, fmt.Errorf("requests[%d].%w", i, err))
		}
		r.NATSSubject = strings.ReplaceAll(r.Subject, "{host}", sinks.SubjectToken(c.Host))
	}
}
