package tap

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cnbridged/cnbridged/internal/where"
)

// Filter selects lines. Every set field must match (and within a field,
// any of its values). Markers (loss, gap, exit_lost, tap_dropped) are
// only ever filtered by host: they are shown, never hidden.
type Filter struct {
	Hosts      []string
	Events     []string
	Exe        string // glob (path.Match) on the executable's path or its base name
	Comm       string // glob on the command name
	PIDs       []uint32
	PPIDs      []uint32
	Containers []string // container id or a prefix of it (12 characters, as docker shows)
	// Under selects a process and its descendants: an entity id, or a
	// glob on the executable's base name of the process, its parent or any
	// ancestor (needs routes with enrich: true and ancestors: N).
	Under string
	// Where is a where expression (internal/where, the language and names
	// of routes' where). A line it cannot evaluate is not shown (Printer
	// counts them).
	Where *where.Expr
}

// Validate checks the globs.
func (f *Filter) Validate() error {
	for _, g := range []struct{ flag, pat string }{{"--exe", f.Exe}, {"--comm", f.Comm}, {"--under", f.Under}} {
		if _, err := path.Match(g.pat, ""); err != nil {
			return fmt.Errorf("%s %q: bad glob: %w", g.flag, g.pat, err)
		}
	}
	return nil
}

// Match reports whether l passes the filter.
func (f *Filter) Match(l *Line) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, l.Host) {
		return false
	}
	if l.IsMarker() {
		return true
	}
	if len(f.Events) > 0 && !slices.Contains(f.Events, l.Event()) {
		return false
	}
	if f.Exe != "" && !globPath(f.Exe, l.Exe()) {
		return false
	}
	if f.Comm != "" && !glob(f.Comm, l.Comm()) {
		return false
	}
	if len(f.PIDs) > 0 {
		if pid, ok := l.PID(); !ok || !slices.Contains(f.PIDs, pid) {
			return false
		}
	}
	if len(f.PPIDs) > 0 {
		if ppid, ok := l.PPID(); !ok || !slices.Contains(f.PPIDs, ppid) {
			return false
		}
	}
	if len(f.Containers) > 0 {
		id := l.ContainerID()
		if id == "" || !slices.ContainsFunc(f.Containers, func(c string) bool { return strings.HasPrefix(id, c) }) {
			return false
		}
	}
	if f.Under != "" && !f.under(l) {
		return false
	}
	return true
}

// where evaluates the Where expression on a line Match selected.
func (f *Filter) where(l *Line) (bool, error) {
	if f.Where == nil || l.IsMarker() {
		return true, nil
	}
	return f.Where.Eval(&l.Record)
}

func (f *Filter) under(l *Line) bool {
	match := func(entity, exe string) bool {
		return entity != "" && entity == f.Under || exe != "" && glob(f.Under, path.Base(exe))
	}
	if p := l.Process.V; l.Process.Set && match(p.EntityID.V, p.Exe.V) {
		return true
	}
	if p := l.Parent.V; l.Parent.Set && match(p.EntityID.V, p.Exe.V) {
		return true
	}
	for _, a := range l.Ancestors {
		if match(a.EntityID.V, a.Exe.V) {
			return true
		}
	}
	return false
}

// glob matches a name in which "/" is an ordinary character (a comm such
// as "kworker/u8:1").
func glob(pat, s string) bool {
	const slash = "\x01"
	ok, _ := path.Match(strings.ReplaceAll(pat, "/", slash), strings.ReplaceAll(s, "/", slash))
	return ok
}

// globPath matches an executable path: the whole path, or its base name
// when the pattern has no slash.
func globPath(pat, exe string) bool {
	if exe == "" {
		return false
	}
	if strings.Contains(pat, "/") {
		ok, _ := path.Match(pat, exe)
		return ok
	}
	return glob(pat, path.Base(exe))
}
