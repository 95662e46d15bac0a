package daemon

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/selection"
)

// procMask is procMaskFor on the running kernel.
func procMask(cfg *config.Config) (m cnmsg.What, kernelFiltered bool, user *router.EventSet) {
	return procMaskFor(cfg, kernelFilters())
}

// procMaskFor returns the kernel-side process event mask for cfg, whether
// the kernel filters (narrower than every event, and canFilter: Linux ≥
// 6.6), and the set to filter in userspace (all that a kernel without
// filtering sends).
func procMaskFor(cfg *config.Config, canFilter bool) (m cnmsg.What, kernelFiltered bool, user *router.EventSet) {
	set := cfg.Listener.ProcEventSet
	m = set.KernelMask()
	if m != cnmsg.ProcAll && enriches(cfg) {
		// The process table needs the events that change it.
		m |= tableEvents
	}
	if m == cnmsg.ProcAll {
		return m, false, nil
	}
	// The userspace filter also applies with a kernel filter: it catches
	// the events that arrive between the subscription and the filter.
	if !canFilter {
		return cnmsg.ProcAll, false, &set
	}
	return m, true, &set
}

// kernelFilters reports whether the running kernel filters process events
// per socket (struct proc_input, Linux 6.6).
func kernelFilters() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return releaseFilters(unix.ByteSliceToString(u.Release[:]))
}

// releaseFilters reports whether a kernel release string ("6.6.0-rc1",
// "5.15.0-91-generic") is Linux 6.6 or later.
func releaseFilters(release string) bool {
	var major, minor int
	fmt.Sscanf(release, "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 6
}

// slotted is a running sink as a plan sees it: a target in a fixed slot.
type slotted interface {
	bridge.Target
	Slot() int
}

// buildPlan compiles cfg's routes against the sink slots of sinks (nil:
// the running sinks).
func (d *Daemon) buildPlan(cfg *config.Config, sinks map[string]*sinkEntry) (*bridge.Plan, error) {
	d.mu.Lock()
	if sinks == nil {
		sinks = d.sinks
	}
	running := make(map[string]slotted, len(sinks))
	for name, e := range sinks {
		running[name] = e.runner
	}
	d.mu.Unlock()
	var tap slotted
	if d.tap != nil { // every routed record also goes to the tap
		tap = d.tap
	}
	var replies bridge.ReplyMatcher
	if d.replies != nil {
		replies = d.replies
	}
	return compilePlan(cfg, running, tap, replies, kernelFilters())
}

// compilePlan is the plan for cfg: pure. running are the sinks by name,
// tap (when not nil) gets every routed record, replies sees every kernel
// message, and canFilter says whether the kernel filters process events
// per socket.
func compilePlan(cfg *config.Config, running map[string]slotted, tap slotted, replies bridge.ReplyMatcher, canFilter bool) (*bridge.Plan, error) {
	slotOf := map[string]int{}
	var bySlot [router.MaxSinks]bridge.Target // nil interfaces for free slots
	for name, s := range running {
		slotOf[name] = s.Slot()
		bySlot[s.Slot()] = s
	}
	var tapBit uint64
	if tap != nil {
		bySlot[tap.Slot()], tapBit = tap, 1<<tap.Slot()
	}
	routes := make([]router.Route, 0, len(cfg.Routes))
	var stages []*bridge.Stage
	for i, rc := range cfg.Routes {
		r := router.Route{Match: rc.Pattern, LossMarkers: rc.LossMarkersOn(), Enrich: rc.Enrich,
			Events: rc.EventSet, HasEvents: rc.HasEvents,
			Ancestors: rc.Ancestors, NoThreads: !rc.ThreadsOn(), Sinks: tapBit}
		for _, s := range rc.Sinks {
			slot, ok := slotOf[s]
			if !ok {
				return nil, fmt.Errorf("routes[%d]: no sink %q", i, s)
			}
			r.Sinks |= 1 << slot
		}
		sel, err := selectionOf(i, rc)
		if err != nil {
			return nil, err
		}
		if sel != nil {
			if len(stages) == router.MaxStages {
				return nil, fmt.Errorf("routes[%d]: more than %d routes use where, rate_limit or fold", i, router.MaxStages)
			}
			r.Selects, r.Stage = true, len(stages)
			stages = append(stages, &bridge.Stage{Route: i, Sinks: r.Sinks, Enrich: rc.Enrich, Sel: sel})
		}
		routes = append(routes, r)
	}
	trusted := cfg.Listener.Trusted
	_, filtered, userFilter := procMaskFor(cfg, canFilter)
	enrich := false
	for _, r := range routes {
		enrich = enrich || r.Enrich
	}
	return &bridge.Plan{
		Replies:      replies,
		Table:        router.New(routes),
		Sinks:        bySlot[:],
		Trusted:      trusted,
		ProcFiltered: filtered,
		UserFilter:   userFilter,
		Enrich:       enrich,
		Stages:       stages,
		Tap:          tapBit,
		Encoder:      event.NewEncoder(cfg.Host),
	}, nil
}

// selectionOf is the selection stage of route i (nil when it asks for
// none), fresh: a plan's stages start empty.
func selectionOf(i int, rc config.Route) (*selection.Route, error) {
	if rc.Where != "" && rc.WhereExpr == nil {
		return nil, fmt.Errorf("routes[%d].where: not compiled (the config was not validated)", i)
	}
	if rc.RateLimit != nil && len(rc.RateLimit.Paths) != len(rc.RateLimit.Per) {
		return nil, fmt.Errorf("routes[%d].rate_limit: not parsed (the config was not validated)", i)
	}
	return selection.New(selection.Spec{Index: i, Where: rc.WhereExpr, RateLimit: rc.RateLimit,
		Fold: rc.Fold == config.FoldLifecycle}), nil
}
