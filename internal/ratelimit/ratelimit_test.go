package ratelimit_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/ratelimit"
	"github.com/cnbridged/cnbridged/internal/where"
)

const sec = int64(time.Second)

// testEnv is built once for the package's tests (an Env is safe for
// concurrent use).
var testEnv = sync.OnceValues(where.NewEnv)

func limiter(t testing.TB, c ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	env, err := testEnv()
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(env); err != nil {
		t.Fatal(err)
	}
	return ratelimit.New(2, &c)
}

// rec is an enriched event of process pid running exe.
func rec(ev, exe string, pid int64, uid int64) *fields.Record {
	return &fields.Record{
		Proc: fields.Some(fields.Proc{Event: ev, PID: fields.Some(pid), TGID: fields.Some(pid)}),
		Process: fields.Some(fields.Process{EntityID: fields.Some("e:" + strconv.FormatInt(pid, 10)), Exe: fields.Some(exe),
			UID: fields.Some(uid)}),
	}
}

// TestBurstThenRate: 100 execs of one image at once under 5/s, burst 5:
// 5 delivered, 95 counted and reported under the image's key; later,
// what is delivered stays within burst + rate × elapsed.
func TestBurstThenRate(t *testing.T) {
	l := limiter(t, ratelimit.Config{Per: []string{"process.exe", "process.uid"}, EventsPerSecond: 5, Burst: 5})
	t0 := 1000 * sec
	delivered := 0
	for i := range 100 {
		if l.Allow(rec("exec", "/usr/bin/cc", int64(1000+i), 1000), t0+int64(i)) {
			delivered++
		}
	}
	if delivered != 5 {
		t.Errorf("delivered %d of 100 at once, want the burst, 5", delivered)
	}
	got := l.Tick(t0 + sec/2)
	want := []event.Suppressed{{Route: 2, Key: []event.KeyValue{{Path: "process.exe", Value: "/usr/bin/cc"}, {Path: "process.uid", Value: "1000"}},
		Count: 95, From: t0 + 5, To: t0 + 99}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tick (-want +got):\n%s", diff)
	}
	// 10 s of one exec every 10 ms.
	for i := range 1000 {
		if l.Allow(rec("exec", "/usr/bin/cc", int64(2000+i), 1000), t0+sec+int64(i)*sec/100) {
			delivered++
		}
	}
	elapsed := 11.0
	if limit := 5 + 5*elapsed; float64(delivered) > limit {
		t.Errorf("delivered %d in %vs, over burst + rate × elapsed = %v", delivered, elapsed, limit)
	}
	st := l.Stats()
	var reported uint64 = 95
	for _, s := range l.Flush() {
		reported += s.Count
	}
	if st.Offered != 1100 || st.Delivered+st.Suppressed != st.Offered || reported != st.Suppressed || int(st.Delivered) != delivered {
		t.Errorf("stats %+v, reported %d, delivered %d: want offered 1100 = delivered + suppressed, suppressed = reported", st, reported, delivered)
	}
}

// TestReportEvery: a key is reported at most once per report_every by
// Tick, and Flush reports whatever is pending.
func TestReportEvery(t *testing.T) {
	l := limiter(t, ratelimit.Config{Per: []string{"process.exe"}, EventsPerSecond: 1, Burst: 1, ReportEvery: 10 * time.Second})
	t0 := 1000 * sec
	reports := 0
	for i := range 300 { // 30 s, ten records a second
		now := t0 + int64(i)*sec/10
		l.Allow(rec("fork", "/bin/sh", 1, 0), now)
		for _, s := range l.Tick(now) {
			reports++
			if s.Count == 0 {
				t.Errorf("an empty report: %+v", s)
			}
		}
	}
	if reports != 3 {
		t.Errorf("%d reports in 30 s with report_every 10s, want 3", reports)
	}
	if f := l.Flush(); len(f) != 1 || f[0].Count == 0 {
		t.Errorf("Flush = %+v, want the pending count", f)
	}
	if f := l.Flush(); len(f) != 0 {
		t.Errorf("Flush again = %+v, want nothing", f)
	}
}

// TestOverflowKey: keys beyond max_keys share the overflow key, reported
// as such.
func TestOverflowKey(t *testing.T) {
	l := limiter(t, ratelimit.Config{Per: []string{"process.exe"}, EventsPerSecond: 1, Burst: 1, MaxKeys: 2})
	t0 := 1000 * sec
	for i := range 10 {
		for _, exe := range []string{"/a", "/b", "/c", "/d"} {
			l.Allow(rec("fork", exe, 1, 0), t0+int64(i))
		}
	}
	st := l.Stats()
	if st.ActiveKeys != 3 || st.Suppressed != 4*10-3 {
		t.Errorf("stats %+v, want 3 active keys (two and the overflow), 37 suppressed", st)
	}
	var overflow *event.Suppressed
	for _, s := range l.Flush() {
		if s.Overflow {
			overflow = &s
		}
	}
	if overflow == nil || overflow.Count != 19 || len(overflow.Key) != 0 || ratelimit.KeyString(*overflow) != "overflow" {
		t.Errorf("overflow report %+v, want 19 records of /c and /d, no key", overflow)
	}
}

// TestPairsStayWhole: the exit of a process whose exec was delivered is
// delivered over the limit; a thread's exit, and the exit of a process
// whose exec was suppressed, are limited like the rest.
func TestPairsStayWhole(t *testing.T) {
	l := limiter(t, ratelimit.Config{Per: []string{"process.exe"}, EventsPerSecond: 1, Burst: 1})
	t0 := 1000 * sec
	if !l.Allow(rec("exec", "/bin/cc", 10, 0), t0) {
		t.Fatal("the first exec was suppressed")
	}
	if l.Allow(rec("exec", "/bin/cc", 11, 0), t0) {
		t.Fatal("the second exec was delivered over the burst")
	}
	thread := rec("exit", "/bin/cc", 10, 0)
	thread.Proc.V.Thread = fields.Some(true)
	if l.Allow(thread, t0) {
		t.Error("a thread's exit was delivered over the limit")
	}
	if !l.Allow(rec("exit", "/bin/cc", 10, 0), t0) {
		t.Error("the exit of a delivered exec was suppressed")
	}
	if l.Allow(rec("exit", "/bin/cc", 11, 0), t0) {
		t.Error("the exit of a suppressed exec was delivered over the limit")
	}
	if l.Allow(rec("exit", "/bin/cc", 10, 0), t0) {
		t.Error("a second exit of a delivered exec was delivered over the limit")
	}
	if st := l.Stats(); st.Delivered+st.Suppressed != st.Offered || st.Delivered != 2 {
		t.Errorf("stats %+v, want 2 delivered and delivered + suppressed = offered", st)
	}
}

// TestPairsBounded: the limiter remembers at most its bound of delivered
// execs, the oldest forgotten first.
func TestPairsBounded(t *testing.T) {
	c := ratelimit.Config{EventsPerSecond: 1e9, Burst: 1 << 20}
	c.SetMaxPairs(4)
	l := limiter(t, c)
	for pid := range int64(10) {
		l.Allow(rec("exec", "/x", pid, 0), sec)
	}
	if n := l.Pairs(); n != 4 {
		t.Errorf("remembers %d execs, want the bound, 4", n)
	}
	// 6..9 are remembered: their exits bypass the (exhausted) bucket.
	c2 := ratelimit.Config{EventsPerSecond: 1, Burst: 1}
	c2.SetMaxPairs(2)
	l2 := limiter(t, c2)
	for pid := range int64(3) {
		l2.Allow(rec("exec", "/x", pid, 0), sec) // only pid 0 is delivered
	}
	l2.Allow(rec("exec", "/x", 7, 0), 3*sec) // delivered: a token came back
	l2.Allow(rec("exec", "/x", 8, 0), 5*sec) // delivered: 0 forgotten
	l2.Allow(rec("exec", "/x", 9, 0), 7*sec) // delivered: 7 forgotten
	if l2.Allow(rec("exit", "/x", 0, 0), 7*sec) || l2.Allow(rec("exit", "/x", 7, 0), 7*sec) {
		t.Error("a forgotten exec's exit bypassed the limit")
	}
	if !l2.Allow(rec("exit", "/x", 8, 0), 7*sec) || !l2.Allow(rec("exit", "/x", 9, 0), 7*sec) {
		t.Error("a remembered exec's exit was suppressed")
	}
}

// TestIdleKeysForgotten: a key with a full bucket and nothing to report
// is dropped at Tick; one with records to report is kept.
func TestIdleKeysForgotten(t *testing.T) {
	l := limiter(t, ratelimit.Config{Per: []string{"process.exe"}, EventsPerSecond: 10, Burst: 2, ReportEvery: time.Second})
	t0 := 1000 * sec
	for _, exe := range []string{"/a", "/b", "/b", "/b"} {
		l.Allow(rec("fork", exe, 1, 0), t0)
	}
	l.Tick(t0 + 1)
	if st := l.Stats(); st.ActiveKeys != 2 {
		t.Fatalf("active keys %d right after, want 2", st.ActiveKeys)
	}
	l.Tick(t0 + 2*sec)
	if st := l.Stats(); st.ActiveKeys != 0 || st.Pending != 0 {
		t.Errorf("stats %+v two seconds later, want no key left", st)
	}
}

func TestValidate(t *testing.T) {
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	c := ratelimit.Config{Per: []string{"process.exe", "process.cmdline", "process.exee", "process.exe"}, EventsPerSecond: -1, Burst: -2, MaxKeys: -1, ReportEvery: -1}
	err = c.Validate(env)
	for _, want := range []string{
		`per[1]: "process.cmdline" is a list(string): want a string, int or bool member`,
		`per[2]: "process.exee": no member "exee" in cnbridged.Process`,
		`per[3]: "process.exe" listed twice`,
		`events_per_second: -1: want a rate above 0`,
		`burst: -2: want at least 1`,
		`max_keys: -1 is outside 1..1048576`,
		`report_every: must be positive`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
}
