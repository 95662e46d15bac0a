package daemon

import (
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/where"
)

type fakeSink struct{ slot int }

func (fakeSink) Offer(*event.Batch) {}
func (s fakeSink) Slot() int        { return s.slot }

var (
	procID = cnmsg.ID{Idx: 1, Val: 1}
	execEv = &cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1, TGID: 1}
	forkEv = &cnmsg.ProcEvent{What: cnmsg.ProcFork}
)

func off() *bool { f := false; return &f }

func planConfig(procEvents ...string) *config.Config {
	if len(procEvents) == 0 {
		procEvents = []string{"all"}
	}
	c := &config.Config{
		Listener: config.Listener{ProcEvents: procEvents, UserspaceSenders: []string{"7.*"}},
		Routes: []config.Route{
			{Match: "1.1", Events: []string{"exec"}, Sinks: []string{"a"}},
			{Match: "7.*", Sinks: []string{"a", "b"}, LossMarkers: off()},
		},
	}
	parsed(c)
	return c
}

// parsed fills in the typed values that config.Load parses once (the
// patterns and event sets that compilePlan reads).
func parsed(c *config.Config) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	c.Listener.ProcEventSet, err = router.ParseEvents(c.Listener.ProcEvents)
	must(err)
	for _, s := range c.Listener.UserspaceSenders {
		p, err := router.ParsePattern(s)
		must(err)
		c.Listener.Trusted = append(c.Listener.Trusted, p)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Pattern, err = router.ParsePattern(r.Match)
		must(err)
		if len(r.Events) > 0 {
			r.EventSet, err = router.ParseEvents(r.Events)
			must(err)
			r.HasEvents = true
		}
	}
}

// TestCompilePlanRoutes: routes become sink bits by slot, events and loss
// markers per route, trusted senders, and empty slots stay nil.
func TestCompilePlanRoutes(t *testing.T) {
	a, b := fakeSink{3}, fakeSink{5}
	p, err := compilePlan(planConfig(), map[string]slotted{"a": a, "b": b}, nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"1.1 exec", p.Table.Match(procID, execEv), 1 << 3},
		{"1.1 fork (not in events)", p.Table.Match(procID, forkEv), 0},
		{"7.9", p.Table.Match(cnmsg.ID{Idx: 7, Val: 9}, nil), 1<<3 | 1<<5},
		{"8.1 (no route)", p.Table.Match(cnmsg.ID{Idx: 8, Val: 1}, nil), 0},
		{"loss targets 1.1", p.Table.LossTargets(procID), 1 << 3},
		{"loss targets 7.9 (loss_markers: false)", p.Table.LossTargets(cnmsg.ID{Idx: 7, Val: 9}), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %#b, want %#b", c.name, c.got, c.want)
		}
	}
	for i, s := range p.Sinks {
		switch i {
		case 3, 5:
			if s == nil {
				t.Errorf("slot %d: nil, want its sink", i)
			}
		default:
			if s != nil {
				t.Errorf("slot %d: got %v, want nil (a free slot)", i, s)
			}
		}
	}
	if len(p.Trusted) != 1 || !p.Trusted[0].Matches(cnmsg.ID{Idx: 7, Val: 1}) || p.Trusted[0].Matches(procID) {
		t.Errorf("trusted got %+v, want 7.*", p.Trusted)
	}
	if p.Enrich {
		t.Error("Enrich set without an enriching route")
	}
}

// TestCompilePlanTap: the tap's slot is in every route.
func TestCompilePlanTap(t *testing.T) {
	p, err := compilePlan(planConfig(), map[string]slotted{"a": fakeSink{0}, "b": fakeSink{1}}, fakeSink{9}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Table.Match(procID, execEv), uint64(1|1<<9); got != want {
		t.Errorf("1.1 exec got %#b, want %#b", got, want)
	}
	if p.Sinks[9] == nil {
		t.Error("tap slot empty")
	}
}

func TestCompilePlanUnknownSink(t *testing.T) {
	_, err := compilePlan(planConfig(), map[string]slotted{"a": fakeSink{0}}, nil, nil, true)
	if err == nil || !strings.Contains(err.Error(), `routes[1]: no sink "b"`) {
		t.Errorf("got %v, want routes[1]: no sink \"b\"", err)
	}
}

// TestCompilePlanProcFilter: a narrower listener.proc_events is filtered
// by the kernel where it can (seq gaps on 1.1 then not loss) and in
// userspace always (events before the filter is set, or older kernels).
func TestCompilePlanProcFilter(t *testing.T) {
	sinks := map[string]slotted{"a": fakeSink{0}, "b": fakeSink{1}}
	tests := []struct {
		name         string
		events       []string
		canFilter    bool
		wantFiltered bool
		wantUser     bool
	}{
		{"all", []string{"all"}, true, false, false},
		{"exec, kernel filters", []string{"exec"}, true, true, true},
		{"exec, old kernel", []string{"exec"}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compilePlan(planConfig(tt.events...), sinks, nil, nil, tt.canFilter)
			if err != nil {
				t.Fatal(err)
			}
			if p.ProcFiltered != tt.wantFiltered || (p.UserFilter != nil) != tt.wantUser {
				t.Errorf("ProcFiltered %v, user filter %v; want %v, %v", p.ProcFiltered, p.UserFilter != nil, tt.wantFiltered, tt.wantUser)
			}
		})
	}
}

func TestCompilePlanEnrich(t *testing.T) {
	cfg := planConfig()
	cfg.Routes[0].Enrich = true
	p, err := compilePlan(cfg, map[string]slotted{"a": fakeSink{0}, "b": fakeSink{1}}, nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enrich {
		t.Error("Enrich not set with an enriching route")
	}
	var _ bridge.Target = fakeSink{}
}

func TestReleaseFilters(t *testing.T) {
	for release, want := range map[string]bool{
		"6.6.0": true, "6.18.0-1-amd64": true, "7.0": true, "6.5.13": false,
		"5.15.0-91-generic": false, "6.10.2-arch1-1": true, "": false, "garbage": false,
	} {
		if got := releaseFilters(release); got != want {
			t.Errorf("releaseFilters(%q) got %v, want %v", release, got, want)
		}
	}
}

// TestCompilePlanStages: a route with where, rate_limit or fold gets a
// selection stage of its own, fresh in every plan, and the router knows
// which routes select; a route without them has none. (The daemon used to
// refuse such routes: routes[N].where: validated, but not applied.)
func TestCompilePlanStages(t *testing.T) {
	c := planConfig()
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	c.Routes[1].Where = `host == "x"`
	if c.Routes[1].WhereExpr, err = env.Compile(c.Routes[1].Where); err != nil {
		t.Fatal(err)
	}
	running := map[string]slotted{"a": fakeSink{3}, "b": fakeSink{5}}
	p, err := compilePlan(c, running, fakeSink{9}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != 1 {
		t.Fatalf("%d stages, want 1 (routes[1]'s)", len(p.Stages))
	}
	if s := p.Stages[0]; s.Route != 1 || s.Sinks != 1<<3|1<<5|1<<9 || s.Sel == nil {
		t.Errorf("stage: route %d sinks %b sel %v; want route 1, sinks a, b and the tap", s.Route, s.Sinks, s.Sel)
	}
	if p.Tap != 1<<9 {
		t.Errorf("Tap %b, want bit 9", p.Tap)
	}
	m := p.Table.MatchSelect(cnmsg.ID{Idx: 7, Val: 1}, nil)
	if m.Stages != 1 || m.Direct != 0 || m.Sinks != 1<<3|1<<5|1<<9 {
		t.Errorf("7.1: %+v; want stage 0, no direct sinks", m)
	}
	m = p.Table.MatchSelect(procID, execEv)
	if m.Stages != 0 || m.Direct != 1<<3|1<<9 {
		t.Errorf("1.1 exec: %+v; want no stage, a and the tap direct", m)
	}
	q, err := compilePlan(c, running, fakeSink{9}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if q.Stages[0].Sel == p.Stages[0].Sel {
		t.Error("two plans share a stage: a reload would not start empty")
	}
	c.Routes[1].WhereExpr = nil
	if _, err := compilePlan(c, running, nil, nil, true); err == nil || !strings.Contains(err.Error(), "routes[1].where") {
		t.Errorf("an uncompiled where: %v, want an error naming routes[1].where", err)
	}
}
