package selection_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/ratelimit"
	"github.com/cnbridged/cnbridged/internal/selection"
	"github.com/cnbridged/cnbridged/internal/where"
)

var testEnv = sync.OnceValues(where.NewEnv)

func spec(t testing.TB, expr string, rl *ratelimit.Config, fold bool) selection.Spec {
	t.Helper()
	env, err := testEnv()
	if err != nil {
		t.Fatal(err)
	}
	s := selection.Spec{Index: 1, Fold: fold}
	if expr != "" {
		if s.Where, err = env.Compile(expr); err != nil {
			t.Fatal(err)
		}
	}
	if rl != nil {
		rl.SetDefaults()
		if err := rl.Validate(env); err != nil {
			t.Fatal(err)
		}
		s.RateLimit = rl
	}
	return s
}

func rec(ev string, pid int64, exe string, args ...string) *fields.Record {
	return &fields.Record{Time: "2026-12-06T10:00:00.000000000Z", Host: "h",
		Proc: fields.Some(fields.Proc{Event: ev, PID: fields.Some(pid), TGID: fields.Some(pid)}),
		Process: fields.Some(fields.Process{EntityID: fields.Some("e:" + strconv.FormatInt(pid, 10)), PID: fields.Some(pid),
			Exe: fields.Some(exe), Cmdline: fields.Some(args), StartTime: fields.Some("2026-12-06T10:00:00.000000000Z")})}
}

func checkCounts(t *testing.T, c selection.Counts) {
	t.Helper()
	if c.Offered != c.Folded+c.Filtered+c.Errors+c.Suppressed+c.Sent {
		t.Errorf("counts %+v: offered is not folded + filtered + errors + suppressed + sent", c)
	}
}

// TestWhereOnArgument: a where on an argument keeps exactly those execs;
// markers pass; an evaluation error is counted apart.
func TestWhereOnArgument(t *testing.T) {
	s := selection.New(spec(t, `proc.event == "exec" && "--keep" in process.cmdline`, nil, false))
	kept := 0
	for i := range int64(20) {
		args := []string{"x"}
		if i%4 == 0 {
			args = append(args, "--keep")
		}
		if ok, extra, err := s.Select(rec("exec", i, "/bin/x", args...), 1); ok {
			kept++
			if len(extra) != 0 || err != nil {
				t.Errorf("extra %v, err %v", extra, err)
			}
		}
	}
	if kept != 5 {
		t.Errorf("kept %d execs, want the 5 with --keep", kept)
	}
	if ok, _, _ := s.Select(&fields.Record{Type: fields.Some(fields.TypeLoss)}, 1); !ok {
		t.Error("a loss marker was filtered")
	}
	noProcess := rec("exec", 99, "/bin/x")
	noProcess.Process.V.Cmdline = fields.Opt[[]string]{}
	if ok, _, err := s.Select(noProcess, 1); ok || err == nil {
		t.Errorf("Select = %v, %v; want an evaluation error (no cmdline)", ok, err)
	}
	c := s.Counts
	if c.Sent != 6 || c.Filtered != 15 || c.Errors != 1 {
		t.Errorf("counts %+v, want 6 sent (5 execs, the marker), 15 filtered, 1 error", c)
	}
	checkCounts(t, c)
}

// TestRateLimitAccounts: 100 execs of one image at once under 5/s, burst
// 5: delivered + suppressed = 100, and the reports say how many.
func TestRateLimitAccounts(t *testing.T) {
	s := selection.New(spec(t, "", &ratelimit.Config{Per: []string{"process.exe"}, EventsPerSecond: 5, Burst: 5}, false))
	now := int64(1e18)
	sent := 0
	for i := range int64(100) {
		if ok, _, _ := s.Select(rec("exec", i, "/usr/bin/cc"), now); ok {
			sent++
		}
	}
	var reported uint64
	for _, r := range append(s.Tick(now+1e9), s.Flush(now+2e9)...) {
		if r.Kind != event.KindSuppressed || r.Suppressed.Route != 1 {
			t.Errorf("extra record %+v, want a suppression report of route 1", r)
			continue
		}
		reported += r.Suppressed.Count
	}
	if sent != 5 || uint64(sent)+reported != 100 {
		t.Errorf("sent %d, reported %d suppressed; want 5 and 95", sent, reported)
	}
	checkCounts(t, s.Counts)
}

// TestFoldThenWhere: sh -c 'exec sleep 0.2' is one life record with both
// images; the where sees the life.
func TestFoldThenWhere(t *testing.T) {
	s := selection.New(spec(t, `life.execs.exists(i, i.exe == "/usr/bin/sleep")`, nil, true))
	var extra []event.Record
	fork := rec("fork", 7, "/usr/bin/bash", "bash")
	fork.Proc.V = fields.Proc{Event: "fork", ChildPID: fields.Some[int64](7), ChildTGID: fields.Some[int64](7)}
	exit := rec("exit", 7, "/usr/bin/sleep", "sleep", "0.2")
	exit.Time = "2026-12-06T10:00:00.210000000Z"
	exit.Proc.V.ExitStatus = fields.Some[int64](0)
	for _, r := range []*fields.Record{fork, rec("exec", 7, "/usr/bin/sh", "sh", "-c", "exec sleep 0.2"), rec("exec", 7, "/usr/bin/sleep", "sleep", "0.2"), exit} {
		ok, e, err := s.Select(r, 1)
		if ok || err != nil {
			t.Errorf("%s: sent %v, err %v; want folded", r.Proc.V.Event, ok, err)
		}
		extra = append(extra, e...)
	}
	if len(extra) != 1 || extra[0].Kind != event.KindLife {
		t.Fatalf("extra %+v, want one life", extra)
	}
	l := extra[0].Life.Life
	if len(l.Execs) != 2 || l.Execs[0].Exe != "/usr/bin/sh" || l.Execs[1].Exe != "/usr/bin/sleep" || l.DurationNs.V != 210e6 || !l.Forked {
		t.Errorf("life %+v, want both images, forked, 210ms", l)
	}
	if want := time.Date(2026, 12, 6, 10, 0, 0, 210e6, time.UTC).UnixNano(); extra[0].Time != want {
		t.Errorf("life time %d, want the exit's receive time", extra[0].Time)
	}
	// A life the where rejects is filtered; an open one is flushed.
	s.Select(rec("exec", 8, "/usr/bin/true"), 1)
	s.Select(rec("exec", 9, "/usr/bin/sleep"), 1)
	out := s.Flush(2)
	if len(out) != 1 || !out[0].Life.Life.Open.V {
		t.Errorf("Flush = %+v, want the open sleep life", out)
	}
	if c := s.Counts; c.Lives != 3 || c.Folded != 6 || c.Filtered != 1 || c.Sent != 2 {
		t.Errorf("counts %+v, want 3 lives, 6 folded, 1 filtered, 2 sent", c)
	}
	checkCounts(t, s.Counts)
}

func TestNothingAsked(t *testing.T) {
	if s := selection.New(selection.Spec{Index: 3}); s != nil {
		t.Errorf("New = %v, want nil for a route that asks for nothing", s)
	}
}
