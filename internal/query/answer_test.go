package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

const boot = "b00t"

// testTable is a small process tree:
//
//	1 init
//	├── 10 sshd
//	│   └── 20 bash
//	│       ├── 30 sleep
//	│       └── 31 nc -l 4444
//	└── 11 cron (seeded)
func testTable(t testing.TB) *proctable.Table {
	t.Helper()
	tb := proctable.New(proctable.Options{BootID: boot, BootWallNs: 1.7e18})
	seed := func(pid, ppid uint32, exe string, args ...string) {
		tb.Seed(&proctable.Observed{PID: pid, PPID: ppid, StartTicks: uint64(pid), Exe: exe, Cmdline: append([]string{exe}, args...), User: "root"})
	}
	seed(1, 0, "/sbin/init")
	seed(10, 1, "/usr/sbin/sshd")
	seed(11, 1, "/usr/sbin/cron")
	seed(20, 10, "/bin/bash")
	// 30 and 31 are seen forking: observed, not seeded.
	tb.Fork(20, 30, 30, 1_000_000_000+5_000_000)
	tb.Exec(30, 30, &proctable.Observed{Exe: "/bin/sleep", Cmdline: []string{"sleep", "60"}, User: "root"}, false)
	tb.Fork(20, 31, 31, 1_000_000_000+5_000_000)
	tb.Exec(31, 31, &proctable.Observed{Exe: "/bin/nc", Cmdline: []string{"nc", "-l", "4444"}, User: "root"}, false)
	return tb
}

// funcFilter is a test double for a compiled where expression.
type funcFilter func(*fields.Record) (bool, error)

func (f funcFilter) Eval(r *fields.Record) (bool, error) { return f(r) }

// testCompile knows a few expressions by name.
func testCompile(src string) (Filter, bool, error) {
	switch src {
	case "exe=nc":
		return funcFilter(func(r *fields.Record) (bool, error) {
			return r.Process.V.Exe.V == "/bin/nc", nil
		}), false, nil
	case "under sshd":
		return funcFilter(func(r *fields.Record) (bool, error) {
			for _, a := range r.Ancestors {
				if a.Exe.V == "/usr/sbin/sshd" {
					return true, nil
				}
			}
			return false, nil
		}), true, nil
	case "fails on seeded":
		return funcFilter(func(r *fields.Record) (bool, error) {
			if r.Process.V.Seeded.V {
				return false, errors.New("no such key: container_id")
			}
			return true, nil
		}), false, nil
	}
	return nil, false, errors.New("column 1: undeclared reference")
}

func newTestResponder(t testing.TB, tb *proctable.Table, incomplete string) *Responder {
	return NewResponder(ResponderConfig{
		Host: "h1", Version: "1.2.3", Compile: testCompile, MaxRows: 100, MaxPerSecond: 1000,
		Snapshot: func(context.Context) (*proctable.Snapshot, string, error) { return tb.Snapshot(), incomplete, nil },
	})
}

func ask(t *testing.T, r *Responder, op, body string) *Answer {
	t.Helper()
	a := r.Answer(context.Background(), op, []byte(body), 1<<20)
	if a == nil {
		t.Fatalf("%s %s: no answer", op, body)
	}
	return a
}

// rows parses an answer's rows, strictly: each is a line of the output
// contract.
func rows(t *testing.T, a *Answer) []*fields.Record {
	t.Helper()
	var out []*fields.Record
	for _, raw := range a.Rows {
		r, err := fields.ParseStrict(raw)
		if err != nil {
			t.Fatalf("row %s: %v", raw, err)
		}
		if r.Host != a.Host || r.Time != a.Time {
			t.Errorf("row host %q time %q, want the answer's %q %q", r.Host, r.Time, a.Host, a.Time)
		}
		out = append(out, r)
	}
	return out
}

func pids(rs []*fields.Record) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Process.V.PID.V)
	}
	return out
}

func TestPS(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	tests := []struct {
		name, body string
		want       []int64
		evalErrors int
	}{
		{"every process, by pid", ``, []int64{1, 10, 11, 20, 30, 31}, 0},
		{"where", `{"where":"exe=nc"}`, []int64{31}, 0},
		// The expression reads ancestors: it is given them.
		{"where on ancestors", `{"where":"under sshd"}`, []int64{20, 30, 31}, 0},
		{"evaluation errors select nothing and are counted", `{"where":"fails on seeded"}`, []int64{30, 31}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ask(t, r, OpPS, tt.body)
			if a.Error != "" {
				t.Fatalf("error answer: %s", a.Error)
			}
			rs := rows(t, a)
			if diff := cmp.Diff(tt.want, pids(rs)); diff != "" {
				t.Errorf("pids (-want +got):\n%s", diff)
			}
			if a.Matched != len(tt.want) || a.Truncated || a.EvalErrors != tt.evalErrors {
				t.Errorf("matched %d truncated %v eval errors %d, want %d false %d", a.Matched, a.Truncated, a.EvalErrors, len(tt.want), tt.evalErrors)
			}
			if a.Table == nil || a.Table.State != "ok" || a.Table.Processes != 6 {
				t.Errorf("table %+v, want ok with 6 processes", a.Table)
			}
			for _, row := range rs {
				if len(row.Ancestors) > 0 {
					t.Errorf("row of %d carries ancestors: rows carry process and parent", row.Process.V.PID.V)
				}
			}
		})
	}
	a := ask(t, r, OpPS, `{"where":"exe=nc"}`)
	nc := rows(t, a)[0]
	if got := nc.Process.V.Cmdline.V; !cmp.Equal(got, []string{"nc", "-l", "4444"}) || nc.Process.V.EntityID.V != "b00t:31:100" ||
		nc.Parent.V.Exe.V != "/bin/bash" || nc.Parent.V.PID.V != 20 {
		t.Errorf("row %s: want nc -l 4444 (b00t:31:100) with parent bash 20", a.Rows[0])
	}
}

func TestTruncation(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	a := ask(t, r, OpPS, `{"max_rows":2}`)
	if len(a.Rows) != 2 || a.Matched != 6 || !a.Truncated || a.TruncatedBy != "max_rows" {
		t.Errorf("max_rows 2: %d rows of %d, truncated %v by %q; want 2 of 6 by max_rows", len(a.Rows), a.Matched, a.Truncated, a.TruncatedBy)
	}
	// The daemon's own bound holds whatever the request asks.
	r.cfg.MaxRows = 3
	a = ask(t, r, OpPS, `{"max_rows":50}`)
	if len(a.Rows) != 3 || a.TruncatedBy != "max_rows" {
		t.Errorf("query.max_rows 3: %d rows, truncated by %q", len(a.Rows), a.TruncatedBy)
	}
	r.cfg.MaxRows = 100
	a = r.Answer(context.Background(), OpPS, nil, envelope+700)
	b, _ := json.Marshal(a)
	if !a.Truncated || a.TruncatedBy != "max_bytes" || len(a.Rows) == 0 || len(b) > envelope+700 {
		t.Errorf("max bytes %d: %d rows, %d bytes, truncated by %q; want some rows within the bound, by max_bytes", envelope+700, len(a.Rows), len(b), a.TruncatedBy)
	}
}

// TestTimeBudget: a where expression that is slow over a big table stops
// at the asker's timeout and says so, instead of answering too late.
func TestTimeBudget(t *testing.T) {
	t.Parallel()
	tb := proctable.New(proctable.Options{BootID: boot})
	for pid := uint32(1); pid <= 4096; pid++ {
		tb.Seed(&proctable.Observed{PID: pid, StartTicks: uint64(pid), Exe: "/bin/x"})
	}
	r := newTestResponder(t, tb, "")
	r.cfg.Compile = func(string) (Filter, bool, error) {
		return funcFilter(func(*fields.Record) (bool, error) { time.Sleep(100 * time.Microsecond); return true, nil }), false, nil
	}
	start := time.Now()
	a := ask(t, r, OpPS, `{"where":"slow","timeout_ms":50}`)
	if !a.Truncated || a.TruncatedBy != "time" || a.Matched >= 4096 {
		t.Errorf("truncated %v by %q, %d matched; want cut by time before 4096", a.Truncated, a.TruncatedBy, a.Matched)
	}
	t.Logf("answered in %v, %d of 4096 examined", time.Since(start), a.Matched)
}

func TestBadRequests(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	tests := []struct {
		op, body, want string
	}{
		{"kill", ``, `"kill" is not a question`},
		{OpPS, `{"where":`, "request: unexpected EOF"},
		{OpPS, `{"wher":"x"}`, `unknown field "wher"`},
		{OpPS, `{"entity_id":"x"}`, "entity_id: not a member of ps's request"},
		{OpInfo, `{"max_rows":3}`, "max_rows: not a member of info's request"},
		{OpTree, `{"depth":-1}`, "depth -1: must not be negative"},
		{OpLineage, `{}`, "entity_id: required"},
		{OpPS, `{"host":"web["}`, `host: "web[": syntax error in pattern`},
		{OpPS, `{"where":"process.exee"}`, "where: column 1: undeclared reference"},
		{OpTree, `{"root":"sshd"}`, `root: "sshd" is neither a pid nor an entity id`},
		{OpPS, `{"timeout_ms":-5}`, "timeout_ms -5: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.op+" "+tt.body, func(t *testing.T) {
			a := ask(t, r, tt.op, tt.body)
			if a.Code != CodeBadRequest || !strings.Contains(a.Error, tt.want) || a.Host != "h1" {
				t.Errorf("got code %d error %q host %q, want 400 with %q from h1", a.Code, a.Error, a.Host, tt.want)
			}
			if len(a.Rows) != 0 {
				t.Errorf("a bad request got %d rows", len(a.Rows))
			}
		})
	}
}

func TestHostGlob(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	if a := r.Answer(context.Background(), OpPS, []byte(`{"host":"web*"}`), 1<<20); a != nil {
		t.Errorf("a question for web*: h1 answered %+v, want silence", a)
	}
	if a := ask(t, r, OpPS, `{"host":"h?"}`); a.Error != "" || len(a.Rows) != 6 {
		t.Errorf("a question for h?: %+v", a)
	}
}

func TestRateLimit(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	r = NewResponder(ResponderConfig{Host: "h1", MaxPerSecond: 2, Snapshot: r.cfg.Snapshot})
	var codes []int
	for range 3 {
		codes = append(codes, ask(t, r, OpInfo, ``).Code)
	}
	if diff := cmp.Diff([]int{0, 0, CodeRateLimited}, codes); diff != "" {
		t.Errorf("codes of 3 questions at once under max_per_second 2 (-want +got):\n%s", diff)
	}
	// A question for other hosts costs nothing.
	r = NewResponder(ResponderConfig{Host: "h1", MaxPerSecond: 1, Snapshot: r.cfg.Snapshot})
	r.Answer(context.Background(), OpInfo, []byte(`{"host":"other"}`), 1<<20)
	if a := ask(t, r, OpInfo, ``); a.Code != 0 {
		t.Errorf("after a question for another host: code %d %s", a.Code, a.Error)
	}
}

// depths renders rows as "pid@depth", the depth from the parent links
// within the answer, as the client indents them.
func depths(rs []*fields.Record) string {
	depth := map[string]int{}
	var out []string
	for _, r := range rs {
		d := 0
		if r.Parent.Set {
			if pd, ok := depth[r.Parent.V.EntityID.V]; ok {
				d = pd + 1
			}
		}
		depth[r.Process.V.EntityID.V] = d
		out = append(out, fmt.Sprintf("%d@%d", r.Process.V.PID.V, d))
	}
	return strings.Join(out, " ")
}

func TestTree(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	tests := []struct{ body, want string }{
		{``, "1@0 10@1 20@2 30@3 31@3 11@1"},
		{`{"root":"20"}`, "20@0 30@1 31@1"},
		{`{"root":"b00t:10:10"}`, "10@0 20@1 30@2 31@2"},
		{`{"root":"1","depth":1}`, "1@0 10@1 11@1"},
		{`{"root":"999"}`, ""},
	}
	for _, tt := range tests {
		a := ask(t, r, OpTree, tt.body)
		if got := depths(rows(t, a)); got != tt.want || a.Error != "" {
			t.Errorf("tree %s: %q (%s), want %q", tt.body, got, a.Error, tt.want)
		}
	}
	a := ask(t, r, OpTree, `{"max_rows":2}`)
	if len(a.Rows) != 2 || a.Matched != 6 || a.TruncatedBy != "max_rows" {
		t.Errorf("tree max_rows 2: %d rows of %d, by %q", len(a.Rows), a.Matched, a.TruncatedBy)
	}
}

func TestLineage(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	a := ask(t, r, OpLineage, `{"entity_id":"b00t:20:20"}`)
	if got := depths(rows(t, a)); got != "1@0 10@1 20@2 30@3 31@3" || a.Matched != 5 {
		t.Errorf("lineage of bash: %q (%d matched), want 1@0 10@1 20@2 30@3 31@3", got, a.Matched)
	}
	a = ask(t, r, OpLineage, `{"entity_id":"b00t:20:20","depth":0}`)
	if a.Matched != 5 {
		t.Errorf("depth 0 is no bound: %d matched", a.Matched)
	}
	if a = ask(t, r, OpLineage, `{"entity_id":"other:1:1"}`); len(a.Rows) != 0 || a.Error != "" || a.Matched != 0 {
		t.Errorf("lineage of an unknown process: %+v, want no rows and no error", a)
	}
}

func TestInfoAndState(t *testing.T) {
	r := newTestResponder(t, testTable(t), "")
	r.cfg.Loss = func() Loss { return Loss{MessagesLost: 7} }
	a := ask(t, r, OpInfo, ``)
	if in := a.Info; in == nil || in.Processes != 6 || in.Seeded != 4 || in.Observed != 2 || in.Loss.MessagesLost != 7 || in.Version != "1.2.3" {
		t.Errorf("info %+v, want 6 processes, 4 seeded, 2 observed, 7 lost, version 1.2.3", in)
	}
	r = newTestResponder(t, testTable(t), "resync")
	if a = ask(t, r, OpPS, ``); a.Table.State != "resync" || !a.Table.Incomplete || len(a.Rows) != 6 {
		t.Errorf("during a resync: table %+v, %d rows; want the rows, marked incomplete", a.Table, len(a.Rows))
	}
	r = newTestResponder(t, testTable(t), "off")
	if a = ask(t, r, OpPS, ``); a.Code != CodeUnavailable || !strings.Contains(a.Error, "enrich: true") {
		t.Errorf("no table: code %d %q, want 503 naming enrich: true", a.Code, a.Error)
	}
	if a = ask(t, r, OpInfo, ``); a.Code != 0 || a.Table.State != "off" {
		t.Errorf("info without a table: code %d, table %+v; want an answer saying off", a.Code, a.Table)
	}
}

// TestPSWhereLanguage: ps takes the where language of routes and tap
// --where, over the rows' names, ancestors included.
func TestPSWhereLanguage(t *testing.T) {
	t.Parallel()
	compile, err := WhereCompiler()
	if err != nil {
		t.Fatal(err)
	}
	r := newTestResponder(t, testTable(t), "")
	r.cfg.Compile = compile
	tests := []struct {
		where      string
		want       []int64
		evalErrors int
		err        string
	}{
		{`process.exe.endsWith("/nc") && "4444" in process.cmdline`, []int64{31}, 0, ""},
		{`ancestors.exists(a, a.exe == "/usr/sbin/sshd")`, []int64{20, 30, 31}, 0, ""},
		{`has(process.seeded)`, []int64{1, 10, 11, 20}, 0, ""},
		{`parent.pid == 1`, []int64{10, 11}, 1, ""}, // init has no parent: an evaluation error
		{`has(record.proc)`, nil, 0, ""},            // rows carry no event
		{`process.exee == "x"`, nil, 0, "where: column 8: undefined field 'exee'"},
		{`process.exe`, nil, 0, "want bool"},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			body, _ := json.Marshal(Request{Where: tt.where})
			a := ask(t, r, OpPS, string(body))
			if tt.err != "" {
				if a.Code != CodeBadRequest || !strings.Contains(a.Error, tt.err) {
					t.Errorf("got %d %q, want 400 with %q", a.Code, a.Error, tt.err)
				}
				return
			}
			if a.Error != "" {
				t.Fatal(a.Error)
			}
			if diff := cmp.Diff(tt.want, pids(rows(t, a))); diff != "" || a.EvalErrors != tt.evalErrors {
				t.Errorf("eval errors %d (%s), want %d; pids (-want +got):\n%s", a.EvalErrors, a.EvalError, tt.evalErrors, diff)
			}
		})
	}
}

// bigTable is a full default-size table: 65 536 processes.
func bigTable(b testing.TB) *proctable.Table {
	tb := proctable.New(proctable.Options{BootID: boot})
	tb.Seed(&proctable.Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init", Cmdline: []string{"init"}})
	for pid := uint32(2); pid <= proctable.DefaultMaxEntries; pid++ {
		tb.Seed(&proctable.Observed{PID: pid, PPID: 1 + pid/2, StartTicks: uint64(pid), Exe: "/usr/bin/worker",
			Cmdline: []string{"worker", "--id", fmt.Sprint(pid)}, User: "app", Cwd: "/srv", Cgroup: "/system.slice/w.service"})
	}
	return tb
}

// BenchmarkPS answers ps over a 65 536-process table: with no where (the
// rows sorted, 1 000 encoded), and with where expressions of one and
// three clauses (one evaluation per process; row-ns is per process).
func BenchmarkPS(b *testing.B) {
	compile, err := WhereCompiler()
	if err != nil {
		b.Fatal(err)
	}
	tb := bigTable(b)
	r := NewResponder(ResponderConfig{Host: "h1", Compile: compile, MaxRows: 1000, MaxPerSecond: 1 << 30,
		Snapshot: func(context.Context) (*proctable.Snapshot, string, error) { return tb.Snapshot(), "", nil }})
	for _, tt := range []struct{ name, where string }{
		{"all", ""},
		{"where-1", `process.exe.endsWith("/nc")`},
		{"where-3", `process.exe.endsWith("/worker") && process.user == "root" && "--id" in process.cmdline`},
		{"where-ancestors", `ancestors.exists(a, a.exe == "/usr/sbin/sshd")`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			body, _ := json.Marshal(Request{Where: tt.where, TimeoutMs: 60_000})
			for b.Loop() {
				if a := r.Answer(context.Background(), OpPS, body, 1<<30); a.Error != "" || a.Truncated && a.TruncatedBy == "time" {
					b.Fatalf("%+v", a)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/proctable.DefaultMaxEntries, "row-ns")
		})
	}
}

// TestExitedRemembered: a process that exited while a child of it lives
// on is not in ps, and is in tree and lineage, marked exited, with how
// long it ran; the child's lineage goes through it.
func TestExitedRemembered(t *testing.T) {
	tb := testTable(t)
	tb.Fork(20, 40, 40, 1_100_000_000+5_000_000)
	tb.Exec(40, 40, &proctable.Observed{Exe: "/bin/sh", Cmdline: []string{"sh", "-c", "sleep 100 &"}, User: "root"}, false)
	tb.Fork(40, 41, 41, 1_100_000_000+6_000_000)
	tb.Exec(41, 41, &proctable.Observed{Exe: "/bin/sleep", Cmdline: []string{"sleep", "100"}, User: "root"}, false)
	tb.Exit(40, 40, 1_100_000_000+250_000_000) // its child 41 lives on
	r := newTestResponder(t, tb, "")

	if a := ask(t, r, OpPS, ``); slices.Contains(pids(rows(t, a)), 40) || !slices.Contains(pids(rows(t, a)), 41) {
		t.Errorf("ps: %v, want 41 and not the exited 40", pids(rows(t, a)))
	}
	a := ask(t, r, OpLineage, `{"entity_id":"b00t:41:110"}`)
	rs := rows(t, a)
	if got := depths(rs); got != "1@0 10@1 20@2 40@3 41@4" {
		t.Fatalf("lineage of 41: %q, want through the exited 40", got)
	}
	sh := rs[3].Process.V
	if !sh.Exited.V || sh.DurationNs.V != 245_000_000 || rs[4].Process.V.Exited.Set || !rs[4].Parent.V.Exited.V {
		t.Errorf("the exited shell %+v (child's parent %+v), want exited after 245 ms and the live child's parent marked", sh, rs[4].Parent.V)
	}
	if got := depths(rows(t, ask(t, r, OpTree, `{"root":"20"}`))); got != "20@0 30@1 31@1 40@1 41@2" {
		t.Errorf("tree under 20: %q, want the exited 40 between 20 and 41", got)
	}
	if got := depths(rows(t, ask(t, r, OpTree, `{"root":"40"}`))); got != "40@0 41@1" {
		t.Errorf("tree under the exited 40 by pid: %q", got)
	}
	if in := ask(t, r, OpInfo, ``).Info; in.Exited != 1 || in.Processes != 7 || in.Seeded+in.Observed != 7 {
		t.Errorf("info %+v, want 7 live processes and 1 exited remembered", in)
	}
}

// TestNoTable: a snapshot function that returns no table and no error is
// answered unavailable (it was dereferenced: a panic in the service's
// handler).
func TestNoTable(t *testing.T) {
	r := NewResponder(ResponderConfig{Host: "h1", MaxPerSecond: 10,
		Snapshot: func(context.Context) (*proctable.Snapshot, string, error) { return nil, "", nil }})
	for _, op := range []string{OpInfo, OpPS} {
		if a := ask(t, r, op, ``); a.Code != CodeUnavailable {
			t.Errorf("%s without a table: code %d %q, want %d", op, a.Code, a.Error, CodeUnavailable)
		}
	}
}
