package router_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
)

var (
	idProc  = cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}
	idOther = cnmsg.ID{Idx: 12, Val: 3}
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in   string
		want router.Pattern
		str  string // String(); in when empty
	}{
		{in: "1.1", want: router.Pattern{Idx: 1, Val: 1}},
		{in: "12.*", want: router.Pattern{Idx: 12, AnyVal: true}},
		{in: "*.3", want: router.Pattern{Val: 3, AnyIdx: true}},
		{in: "*", want: router.Pattern{AnyIdx: true, AnyVal: true}},
		{in: "*.*", want: router.Pattern{AnyIdx: true, AnyVal: true}, str: "*"},
		{in: "0.0", want: router.Pattern{}},
		{in: "4294967295.0", want: router.Pattern{Idx: 4294967295}},
		{in: "0.4294967295", want: router.Pattern{Val: 4294967295}},
		{in: "007.01", want: router.Pattern{Idx: 7, Val: 1}, str: "7.1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := router.ParsePattern(tt.in)
			if err != nil {
				t.Fatalf("ParsePattern(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePattern(%q) (-want +got):\n%s", tt.in, diff)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
			again, err := router.ParsePattern(got.String())
			if err != nil {
				t.Fatalf("ParsePattern(String() = %q): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip through %q (-want +got):\n%s", got.String(), diff)
			}
		})
	}
}

func TestParsePatternErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // in the error besides the quoted pattern
	}{
		{"", "want idx.val"},
		{"1", "want idx.val"},
		{"**", "want idx.val"},
		{"1.", "val: not a decimal u32 or *"},
		{".1", "idx: not a decimal u32 or *"},
		{"a.b", "idx: not a decimal u32 or *"},
		{"1.b", "val: not a decimal u32 or *"},
		{"1.2.3", "val: not a decimal u32 or *"},
		{"-1.1", "idx: not a decimal u32 or *"},
		{"+1.1", "idx: not a decimal u32 or *"},
		{"1.-1", "val: not a decimal u32 or *"},
		{"0x1.1", "idx: not a decimal u32 or *"},
		{" 1.1", "idx: not a decimal u32 or *"},
		{"1.1 ", "val: not a decimal u32 or *"},
		{"4294967296.1", "idx: not a decimal u32 or *"},
		{"1.4294967296", "val: not a decimal u32 or *"},
		{"1*.1", "idx: not a decimal u32 or *"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := router.ParsePattern(tt.in)
			if err == nil {
				t.Fatalf("ParsePattern(%q) = %+v, want an error", tt.in, got)
			}
			for _, w := range []string{`id pattern "` + tt.in + `"`, tt.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParsePattern(%q) error %q does not contain %q", tt.in, err, w)
				}
			}
			if got != (router.Pattern{}) {
				t.Errorf("ParsePattern(%q) returned %+v with its error, want the zero Pattern", tt.in, got)
			}
		})
	}
}

func TestPatternMatches(t *testing.T) {
	ids := []cnmsg.ID{{Idx: 1, Val: 1}, {Idx: 1, Val: 2}, {Idx: 12, Val: 3}, {Idx: 2, Val: 3}, {Idx: 0, Val: 0}, {Idx: 4294967295, Val: 4294967295}}
	tests := []struct {
		pattern string
		want    []bool // one per id
	}{
		{"1.1", []bool{true, false, false, false, false, false}},
		{"1.*", []bool{true, true, false, false, false, false}},
		{"*.3", []bool{false, false, true, true, false, false}},
		{"12.3", []bool{false, false, true, false, false, false}},
		{"0.0", []bool{false, false, false, false, true, false}},
		{"*", []bool{true, true, true, true, true, true}},
		{"4294967295.*", []bool{false, false, false, false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := router.ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]bool, len(ids))
			for i, id := range ids {
				got[i] = p.Matches(id)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Matches over %v (-want +got):\n%s", ids, diff)
			}
		})
	}
}

func mustEvents(t testing.TB, names ...string) router.EventSet {
	t.Helper()
	s, err := router.ParseEvents(names)
	if err != nil {
		t.Fatalf("ParseEvents(%q): %v", names, err)
	}
	return s
}

// every process event type, with an exit both clean (code 0) and not
// (wait status 256: exit(1)).
var events = []struct {
	name string
	ev   cnmsg.ProcEvent
}{
	{"none", cnmsg.ProcEvent{What: cnmsg.ProcNone}},
	{"fork", cnmsg.ProcEvent{What: cnmsg.ProcFork}},
	{"exec", cnmsg.ProcEvent{What: cnmsg.ProcExec}},
	{"uid", cnmsg.ProcEvent{What: cnmsg.ProcUID}},
	{"gid", cnmsg.ProcEvent{What: cnmsg.ProcGID}},
	{"sid", cnmsg.ProcEvent{What: cnmsg.ProcSID}},
	{"ptrace", cnmsg.ProcEvent{What: cnmsg.ProcPtrace}},
	{"comm", cnmsg.ProcEvent{What: cnmsg.ProcComm}},
	{"coredump", cnmsg.ProcEvent{What: cnmsg.ProcCoredump}},
	{"exit0", cnmsg.ProcEvent{What: cnmsg.ProcExit, ExitCode: 0}},
	{"exit256", cnmsg.ProcEvent{What: cnmsg.ProcExit, ExitCode: 256}},
	{"unknown", cnmsg.ProcEvent{What: 0x8}},
}

func TestEventSetHas(t *testing.T) {
	tests := []struct {
		names []string
		want  []string // names from events that the set selects
	}{
		{nil, []string{"none", "fork", "exec", "uid", "gid", "sid", "ptrace", "comm", "coredump", "exit0", "exit256", "unknown"}},
		{[]string{"all"}, []string{"none", "fork", "exec", "uid", "gid", "sid", "ptrace", "comm", "coredump", "exit0", "exit256", "unknown"}},
		{[]string{"exec", "all"}, []string{"none", "fork", "exec", "uid", "gid", "sid", "ptrace", "comm", "coredump", "exit0", "exit256", "unknown"}},
		{[]string{"none"}, []string{"none"}},
		{[]string{"ack"}, []string{"none"}},
		{[]string{"fork"}, []string{"fork"}},
		{[]string{"exec"}, []string{"exec"}},
		{[]string{"uid"}, []string{"uid"}},
		{[]string{"gid"}, []string{"gid"}},
		{[]string{"sid"}, []string{"sid"}},
		{[]string{"ptrace"}, []string{"ptrace"}},
		{[]string{"comm"}, []string{"comm"}},
		{[]string{"coredump"}, []string{"coredump"}},
		{[]string{"exit"}, []string{"exit0", "exit256"}},
		{[]string{"nonzero_exit"}, []string{"exit256"}},
		{[]string{"nonzero_exit", "exit"}, []string{"exit0", "exit256"}},
		{[]string{"exec", "nonzero_exit"}, []string{"exec", "exit256"}},
		{[]string{"fork", "exec", "exit", "ack"}, []string{"none", "fork", "exec", "exit0", "exit256"}},
		{[]string{"exec", "exec"}, []string{"exec"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			s := mustEvents(t, tt.names...)
			var got []string
			for _, e := range events {
				if s.Has(&e.ev) {
					got = append(got, e.name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("selected events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventSetZeroAndAll(t *testing.T) {
	var zero router.EventSet
	all := router.AllEvents()
	for _, e := range events {
		if zero.Has(&e.ev) {
			t.Errorf("zero EventSet selects %s, want nothing", e.name)
		}
		if !all.Has(&e.ev) {
			t.Errorf("AllEvents() does not select %s", e.name)
		}
	}
	if got := zero.KernelMask(); got != 0 {
		t.Errorf("zero EventSet KernelMask() = %#x, want 0", got)
	}
}

func TestParseEventsErrors(t *testing.T) {
	tests := []struct {
		names []string
		want  []string
	}{
		{[]string{"bogus"}, []string{`unknown process event "bogus"`}},
		{[]string{"exec", "bogus", "exit", "EXEC", ""}, []string{`"bogus"`, `"EXEC"`, `""`}},
		{[]string{"unknown"}, []string{`"unknown"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			_, err := router.ParseEvents(tt.names)
			if err == nil {
				t.Fatalf("ParseEvents(%q) succeeded, want an error", tt.names)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if got, want := strings.Count(err.Error(), "unknown process event"), len(tt.want); got != want {
				t.Errorf("error %q lists %d unknown names, want %d", err, got, want)
			}
		})
	}
}

func TestKernelMask(t *testing.T) {
	tests := []struct {
		names []string
		want  cnmsg.What
	}{
		{nil, cnmsg.ProcAll},
		{[]string{"all"}, cnmsg.ProcAll},
		{[]string{"ack"}, cnmsg.ProcAll},
		{[]string{"exec", "none"}, cnmsg.ProcAll},
		{[]string{"exec"}, cnmsg.ProcExec},
		{[]string{"fork", "exec", "exit"}, cnmsg.ProcFork | cnmsg.ProcExec | cnmsg.ProcExit},
		{[]string{"nonzero_exit"}, cnmsg.ProcNonzeroExit},
		{[]string{"exec", "nonzero_exit"}, cnmsg.ProcExec | cnmsg.ProcNonzeroExit},
		{[]string{"exit", "nonzero_exit"}, cnmsg.ProcExit},
		{[]string{"fork", "exec", "uid", "gid", "sid", "ptrace", "comm", "coredump", "exit"}, cnmsg.ProcAll},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			if got := mustEvents(t, tt.names...).KernelMask(); got != tt.want {
				t.Errorf("KernelMask() = %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestKernelMaskDelivers checks that the kernel filter KernelMask asks for
// lets through every event the set selects. filter mirrors cn_filter in
// drivers/connector/cn_proc.c (Linux 6.6).
func TestKernelMaskDelivers(t *testing.T) {
	delivers := func(mask cnmsg.What, ev *cnmsg.ProcEvent) bool {
		if mask == cnmsg.ProcAll { // sent as PROC_EVENT_ALL
			return true
		}
		if mask&cnmsg.ProcNonzeroExit != 0 && ev.What == cnmsg.ProcExit && ev.ExitCode != 0 {
			return true
		}
		return mask&ev.What != 0
	}
	sets := [][]string{
		nil, {"ack"}, {"exec"}, {"exit"}, {"nonzero_exit"}, {"exec", "nonzero_exit"},
		{"exit", "nonzero_exit"}, {"fork", "comm", "coredump"}, {"uid", "gid", "sid", "ptrace"},
	}
	for _, names := range sets {
		s := mustEvents(t, names...)
		mask := s.KernelMask()
		for _, e := range events {
			if s.Has(&e.ev) && !delivers(mask, &e.ev) {
				t.Errorf("events %q select %s but kernel mask %#x filters it out", names, e.name, mask)
			}
		}
	}
}

func pattern(t testing.TB, s string) router.Pattern {
	t.Helper()
	p, err := router.ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMatch(t *testing.T) {
	fork := &cnmsg.ProcEvent{What: cnmsg.ProcFork}
	exec := &cnmsg.ProcEvent{What: cnmsg.ProcExec}
	exit0 := &cnmsg.ProcEvent{What: cnmsg.ProcExit}
	exit1 := &cnmsg.ProcEvent{What: cnmsg.ProcExit, ExitCode: 256}
	ack := &cnmsg.ProcEvent{What: cnmsg.ProcNone}

	tbl := router.New([]router.Route{
		{Match: pattern(t, "1.1"), Sinks: 1 << 0, Events: router.AllEvents()},
		{Match: pattern(t, "1.1"), Sinks: 1<<0 | 1<<1, Events: mustEvents(t, "exec"), HasEvents: true},
		{Match: pattern(t, "1.1"), Sinks: 1 << 2, Events: mustEvents(t, "nonzero_exit"), HasEvents: true},
		{Match: pattern(t, "*"), Sinks: 1 << 3},
		{Match: pattern(t, "12.*"), Sinks: 1 << 4},
		{Match: pattern(t, "*.3"), Sinks: 1 << 5, Events: mustEvents(t, "exec"), HasEvents: true},
		{Match: pattern(t, "7.7"), Sinks: 1 << 63},
		{Match: pattern(t, "7.*"), Sinks: 1 << 63},
	})
	tests := []struct {
		name string
		id   cnmsg.ID
		ev   *cnmsg.ProcEvent
		want uint64
	}{
		{"fork", idProc, fork, 1<<0 | 1<<3},
		{"exec: sink 0 once from two routes", idProc, exec, 1<<0 | 1<<1 | 1<<3},
		{"clean exit", idProc, exit0, 1<<0 | 1<<3},
		{"failed exit", idProc, exit1, 1<<0 | 1<<2 | 1<<3},
		{"ack", idProc, ack, 1<<0 | 1<<3},
		{"proc id without event", idProc, nil, 1<<0 | 1<<3},
		{"12.3: events route never matches a non-process message", idOther, nil, 1<<3 | 1<<4},
		{"12.3 with an event still matches by events", idOther, exec, 1<<3 | 1<<4 | 1<<5},
		{"sink 63 from two routes", cnmsg.ID{Idx: 7, Val: 7}, nil, 1<<3 | 1<<63},
		{"only the catch-all", cnmsg.ID{Idx: 99, Val: 99}, nil, 1 << 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tbl.Match(tt.id, tt.ev); got != tt.want {
				t.Errorf("Match(%v) = %#x, want %#x", tt.id, got, tt.want)
			}
		})
	}
}

func TestMatchUnrouted(t *testing.T) {
	tbl := router.New([]router.Route{
		{Match: pattern(t, "1.1"), Sinks: 1, Events: mustEvents(t, "exec"), HasEvents: true},
		{Match: pattern(t, "2.*"), Sinks: 2},
	})
	tests := []struct {
		name string
		id   cnmsg.ID
		ev   *cnmsg.ProcEvent
	}{
		{"other id", cnmsg.ID{Idx: 3, Val: 1}, nil},
		{"filtered event", idProc, &cnmsg.ProcEvent{What: cnmsg.ProcFork}},
		{"events route, no event", idProc, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tbl.Match(tt.id, tt.ev); got != 0 {
				t.Errorf("Match(%v) = %#x, want 0", tt.id, got)
			}
		})
	}
	if got := router.New(nil).Match(idProc, nil); got != 0 {
		t.Errorf("empty table Match = %#x, want 0", got)
	}
}

func TestEnrich(t *testing.T) {
	exec := &cnmsg.ProcEvent{What: cnmsg.ProcExec}
	fork := &cnmsg.ProcEvent{What: cnmsg.ProcFork}
	tbl := router.New([]router.Route{
		{Match: pattern(t, "1.1"), Sinks: 1 << 0, Events: router.AllEvents()},
		{Match: pattern(t, "1.1"), Sinks: 1 << 1, Events: mustEvents(t, "exec"), HasEvents: true, Enrich: true},
		{Match: pattern(t, "*"), Sinks: 1 << 2, Enrich: true},
		{Match: pattern(t, "1.1"), Sinks: 1 << 1, Events: router.AllEvents()},
	})
	tests := []struct {
		name string
		id   cnmsg.ID
		ev   *cnmsg.ProcEvent
		want uint64
	}{
		{"exec", idProc, exec, 1<<1 | 1<<2},
		{"fork: exec-only enrichment does not apply", idProc, fork, 1 << 2},
		{"no event", idProc, nil, 1 << 2},
		{"other id", idOther, nil, 1 << 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := tbl.Enrich(tt.id, tt.ev)
			if got != tt.want {
				t.Errorf("Enrich(%v) = %#x, want %#x", tt.id, got, tt.want)
			}
			if m := tbl.Match(tt.id, tt.ev); got&^m != 0 {
				t.Errorf("Enrich(%v) = %#x names sinks outside Match = %#x", tt.id, got, m)
			}
		})
	}
}

func TestLossTargets(t *testing.T) {
	tbl := router.New([]router.Route{
		{Match: pattern(t, "1.1"), Sinks: 1 << 0, Events: mustEvents(t, "exec"), HasEvents: true, LossMarkers: true},
		{Match: pattern(t, "1.1"), Sinks: 1 << 1, Events: mustEvents(t, "fork"), HasEvents: true, LossMarkers: false},
		{Match: pattern(t, "*"), Sinks: 1 << 2, LossMarkers: true},
		{Match: pattern(t, "12.*"), Sinks: 1<<0 | 1<<3, LossMarkers: true},
		{Match: pattern(t, "12.*"), Sinks: 1 << 4},
	})
	tests := []struct {
		id   cnmsg.ID
		want uint64
	}{
		{idProc, 1<<0 | 1<<2},
		{idOther, 1<<0 | 1<<2 | 1<<3},
		{cnmsg.ID{Idx: 5, Val: 5}, 1 << 2},
	}
	for _, tt := range tests {
		if got := tbl.LossTargets(tt.id); got != tt.want {
			t.Errorf("LossTargets(%v) = %#x, want %#x", tt.id, got, tt.want)
		}
	}
	off := router.New([]router.Route{{Match: pattern(t, "*"), Sinks: 1}})
	if got := off.LossTargets(idProc); got != 0 {
		t.Errorf("LossTargets with loss markers off = %#x, want 0", got)
	}
}

func TestTableCopiesRoutes(t *testing.T) {
	routes := []router.Route{{Match: pattern(t, "1.1"), Sinks: 1}}
	tbl := router.New(routes)
	routes[0].Sinks = 2
	if got := tbl.Match(idProc, nil); got != 1 {
		t.Errorf("Match after the caller changed its routes = %#x, want 1", got)
	}
	r := tbl.Routes()
	r[0].Sinks = 4
	if got := tbl.Match(idProc, nil); got != 1 {
		t.Errorf("Match after changing Routes() = %#x, want 1", got)
	}
	if diff := cmp.Diff([]router.Route{{Match: pattern(t, "1.1"), Sinks: 1}}, tbl.Routes(), cmp.AllowUnexported(router.EventSet{})); diff != "" {
		t.Errorf("Routes() (-want +got):\n%s", diff)
	}
}

func benchTable(tb testing.TB) *router.Table {
	return router.New([]router.Route{
		{Match: pattern(tb, "1.1"), Sinks: 1 << 0, Events: router.AllEvents(), LossMarkers: true},
		{Match: pattern(tb, "1.1"), Sinks: 1 << 1, Events: mustEvents(tb, "exec", "nonzero_exit"), HasEvents: true, Enrich: true},
		{Match: pattern(tb, "12.*"), Sinks: 1 << 2},
		{Match: pattern(tb, "*"), Sinks: 1 << 3, LossMarkers: true},
	})
}

func TestMatchAllocs(t *testing.T) {
	tbl := benchTable(t)
	ev := &cnmsg.ProcEvent{What: cnmsg.ProcExit, ExitCode: 256}
	var sink uint64
	allocs := testing.AllocsPerRun(1000, func() {
		sink |= tbl.Match(idProc, ev)
		sink |= tbl.Match(idOther, nil)
		es, _ := tbl.Enrich(idProc, ev)
		sink |= es
		sink |= tbl.LossTargets(idProc)
	})
	if allocs != 0 {
		t.Errorf("Match, Enrich, LossTargets allocate %v times per run, want 0", allocs)
	}
	if sink == 0 {
		t.Error("no sinks matched")
	}
}

func BenchmarkMatch(b *testing.B) {
	tbl := benchTable(b)
	exec := &cnmsg.ProcEvent{What: cnmsg.ProcExec}
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink |= tbl.Match(idProc, exec)
	}
	if sink == 0 {
		b.Fatal("no sinks matched")
	}
}
