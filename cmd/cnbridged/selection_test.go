package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// The tests of routes' where, rate_limit and fold in the running daemon.
// Each route's where names markers of its own test (arguments, copied
// images with unique paths), so that parallel tests and the machine's
// other processes do not reach its sinks. On a build without the
// selection stage in the pipeline the daemon refused these configs
// (routes[N].where: validated, but not applied by this build yet).

// marker is a string unique to this test run and name.
func marker(t *testing.T, name string) string {
	return fmt.Sprintf("cnsel-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano())
}

// selConfig is a daemon config with one file sink, out, and routes.
func selConfig(routes string) string {
	return fileConfig("[1]", routes, "")
}

// outPath is where selConfig's sink writes.
func (p *proc) outPath() string { return filepath.Join(p.dir, "out", "events.jsonl") }

// objects reads the sink's lines as JSON objects.
func objects(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range readLines(t, path) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l.raw), &m); err != nil {
			t.Fatalf("%v: %s", err, l.raw)
		}
		out = append(out, m)
	}
	return out
}

// cmdline is a record's process.cmdline.
func cmdline(m map[string]any) []string {
	p, _ := m["process"].(map[string]any)
	args, _ := p["cmdline"].([]any)
	out := make([]string, len(args))
	for i, a := range args {
		out[i], _ = a.(string)
	}
	return out
}

// copyImage copies the executable src into a temp dir under a unique
// name, so that a process's exe tells the test's processes apart.
func copyImage(t *testing.T, src, name string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Skipf("no %s: %v", src, err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), name)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	// /proc/<pid>/exe shows the resolved path.
	if dst, err = filepath.EvalSymlinks(dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runAll runs each command at once and waits for all.
func runAll(t *testing.T, cmds ...*exec.Cmd) {
	t.Helper()
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("%v: %v", c.Args, err)
		}
	}
}

// shMarked is sh running a sleep with arg as its $0: the shell lives
// 300 ms with arg in its cmdline (the sleep is its child, the ':' keeps
// the shell from exec'ing it), long enough for a late /proc read under
// load.
func shMarked(arg string) *exec.Cmd {
	return exec.Command("/bin/sh", "-c", "sleep 0.3; :", arg)
}

// TestWhereKeepsArgument: a route whose where selects an argument sends
// exactly the execs with it: five shells with the argument, five with
// another, and a last one whose line tells that every earlier exec was
// decided.
func TestWhereKeepsArgument(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	m := marker(t, "arg")
	p := startDaemon(t, selConfig(fmt.Sprintf(`  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out]
    where: 'proc.event == "exec" && process.cmdline.exists(a, a == "%[1]s-keep" || a == "%[1]s-end")'
`, m)))
	var cmds []*exec.Cmd
	for i := range 10 {
		arg := m + "-keep"
		if i%2 == 1 {
			arg = m + "-drop"
		}
		cmds = append(cmds, shMarked(arg))
	}
	runAll(t, cmds...)
	runAll(t, shMarked(m+"-end"))
	var lines []map[string]any
	cntest.WaitFor(t, 20*time.Second, "the last shell's exec", func() bool {
		lines = objects(t, p.outPath())
		return slices.ContainsFunc(lines, func(l map[string]any) bool { return slices.Contains(cmdline(l), m+"-end") })
	})
	want := map[float64]bool{}
	for i, c := range cmds {
		if i%2 == 0 {
			want[float64(c.Process.Pid)] = true
		}
	}
	got := map[float64]bool{}
	for _, l := range lines {
		args := cmdline(l)
		switch {
		case slices.Contains(args, m+"-end"):
		case slices.Contains(args, m+"-keep"):
			pid, _ := l["proc"].(map[string]any)["pid"].(float64)
			if got[pid] {
				t.Errorf("pid %v sent twice", pid)
			}
			got[pid] = true
		default:
			t.Errorf("a line the where does not select: %v", l)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("execs sent (pids): got %v, want the five with the argument %v", got, want)
	}
	filtered := p.metric("cnbridged_route_records_total", map[string]string{"route": "0", "outcome": "filtered"})
	if filtered < 5 {
		t.Errorf("filtered %v, want at least the five without the argument", filtered)
	}
}

// TestWhereKeepsSubtree: a where on ancestors keeps what runs under a
// marker shell (a copy of sh under a unique path), at any depth, and
// nothing the same commands do under another shell.
func TestWhereKeepsSubtree(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	sh := copyImage(t, "/bin/sh", marker(t, "sh"))
	p := startDaemon(t, selConfig(fmt.Sprintf(`  - match: "1.1"
    events: [exec]
    enrich: true
    ancestors: 8
    sinks: [out]
    where: 'parent.?exe.orValue("") == "%[1]s" || ancestors.exists(a, a.exe == "%[1]s")'
`, sh)))
	// Inside: sleeps at depth 1, 2 and 3 (sleep 0.251 … tell them apart).
	inside := "sleep 0.251; /bin/sh -c 'sleep 0.252; /bin/sh -c \"sleep 0.253; :\"; :'; :"
	runAll(t, exec.Command(sh, "-c", inside))
	// The same under /bin/sh: none of it.
	runAll(t, exec.Command("/bin/sh", "-c", strings.ReplaceAll(inside, "0.25", "0.26")))
	runAll(t, exec.Command(sh, "-c", "sleep 0.259; :"))
	var lines []map[string]any
	cntest.WaitFor(t, 20*time.Second, "the last sleep's exec", func() bool {
		lines = objects(t, p.outPath())
		return slices.ContainsFunc(lines, func(l map[string]any) bool { return slices.Equal(cmdline(l), []string{"sleep", "0.259"}) })
	})
	var sleeps []string
	shells := 0
	for _, l := range lines {
		args := cmdline(l)
		switch {
		case len(args) == 2 && args[0] == "sleep":
			sleeps = append(sleeps, args[1])
		case len(args) > 0 && args[0] == "/bin/sh":
			shells++
		default:
			t.Errorf("a line outside the subtree: %v", l)
		}
		for _, s := range []string{"0.261", "0.262", "0.263"} {
			if slices.Contains(args, s) {
				t.Errorf("the run under /bin/sh was sent: %v", l)
			}
		}
	}
	slices.Sort(sleeps)
	if want := []string{"0.251", "0.252", "0.253", "0.259"}; !slices.Equal(sleeps, want) {
		t.Errorf("sleeps sent: got %v, want %v", sleeps, want)
	}
	if shells != 2 {
		t.Errorf("%d exec lines of the inner shells, want 2", shells)
	}
}

// TestRateLimitCounts: 100 execs of one image at once under
// events_per_second: 5, burst: 5: what the route sent plus the counts of
// its suppression records is 100, in the file sink and on NATS alike, and
// it sent no more than burst + rate × the time the execs took.
func TestRateLimitCounts(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	img := copyImage(t, "/bin/sleep", marker(t, "sleep"))
	ns := natstest.Run(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var msgs []map[string]any
	sub, err := nc.Subscribe("cnsel.rl", func(msg *nats.Msg) {
		var m map[string]any
		if err := json.Unmarshal(msg.Data, &m); err != nil {
			t.Errorf("%v: %s", err, msg.Data)
			return
		}
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := startDaemon(t, fmt.Sprintf(`
listener:
  groups: [1]
  receive_buffer_bytes: 33554432
sinks:
  out:
    type: file
    path: %%DIR%%/out/events.jsonl
  bus:
    type: nats
    url: %s
    subject: cnsel.rl
routes:
  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out, bus]
    where: 'process.?exe.orValue("") == "%s"'
    rate_limit: {events_per_second: 5, burst: 5, per: [process.exe]}
`, ns.ClientURL(), img))
	var cmds []*exec.Cmd
	for range 100 {
		cmds = append(cmds, exec.Command(img, "1"))
	}
	runAll(t, cmds...)
	decided := func() float64 {
		return p.metric("cnbridged_route_records_total", map[string]string{"route": "0", "outcome": "sent"}) +
			p.metric("cnbridged_route_records_total", map[string]string{"route": "0", "outcome": "suppressed"})
	}
	cntest.WaitFor(t, 20*time.Second, "the route to decide on 100 execs", func() bool { return decided() >= 100 })
	if got := decided(); got != 100 {
		t.Errorf("sent + suppressed in metrics: got %v, want 100", got)
	}
	p.stop() // flushes the suppression counts
	check := func(sink string, lines []map[string]any) {
		t.Helper()
		sent, suppressed := 0, 0
		var first, last time.Time
		seen := func(s any) {
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(s))
			if err != nil {
				t.Errorf("%s: time %v: %v", sink, s, err)
				return
			}
			if first.IsZero() || ts.Before(first) {
				first = ts
			}
			if ts.After(last) {
				last = ts
			}
		}
		for _, l := range lines {
			switch l["type"] {
			case nil:
				sent++
				seen(l["time"])
			case "suppressed":
				key, _ := l["key"].(map[string]any)
				if key["process.exe"] != img || l["route"] != 0.0 {
					t.Errorf("%s: suppression record of another key or route: %v", sink, l)
				}
				n, _ := l["count"].(float64)
				suppressed += int(n)
				seen(l["from"])
				seen(l["to"])
			default:
				t.Errorf("%s: unexpected line %v", sink, l)
			}
		}
		if sent+suppressed != 100 {
			t.Errorf("%s: sent %d + suppressed %d = %d, want 100", sink, sent, suppressed, sent+suppressed)
		}
		if suppressed == 0 {
			t.Errorf("%s: no suppression record", sink)
		}
		if limit := 5 + 5*last.Sub(first).Seconds(); float64(sent) > limit {
			t.Errorf("%s: sent %d in %v, more than burst + rate × elapsed = %.1f", sink, sent, last.Sub(first), limit)
		}
		t.Logf("%s: sent %d, suppressed %d, over %v", sink, sent, suppressed, last.Sub(first))
	}
	check("file", objects(t, p.outPath()))
	cntest.WaitFor(t, 10*time.Second, "100 execs accounted for on NATS", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range msgs {
			if c, ok := m["count"].(float64); ok && m["type"] == "suppressed" {
				n += int(c)
			} else {
				n++
			}
		}
		return n >= 100
	})
	mu.Lock()
	got := slices.Clone(msgs)
	mu.Unlock()
	check("nats", got)
}

// TestFoldLife: with fold: lifecycle, sh -c 'exec sleep 0.2' is one life
// record with both images and a duration of about 0.2 s, instead of its
// fork, execs and exit.
func TestFoldLife(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	// The marker is the working directory: sh and sleep share it, so it
	// shows whenever their images are read.
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := startDaemon(t, selConfig(fmt.Sprintf(`  - match: "1.1"
    events: [fork, exec, exit]
    enrich: true
    fold: lifecycle
    sinks: [out]
    where: 'has(record.life) && process.?cwd.orValue("") == "%s"'
`, dir)))
	c := exec.Command("/bin/sh", "-c", "exec sleep 0.2")
	c.Dir = dir
	runAll(t, c)
	var lines []map[string]any
	cntest.WaitFor(t, 20*time.Second, "the life record", func() bool {
		lines = objects(t, p.outPath())
		return len(lines) > 0
	})
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one life record: %v", len(lines), lines)
	}
	l := lines[0]
	life, _ := l["life"].(map[string]any)
	if l["type"] != "life" || life == nil {
		t.Fatalf("not a life record: %v", l)
	}
	var exes []string
	execs, _ := life["execs"].([]any)
	for _, e := range execs {
		exe, _ := e.(map[string]any)["exe"].(string)
		exes = append(exes, filepath.Base(exe))
	}
	if len(exes) != 2 || !strings.Contains(exes[0], "sh") && exes[0] != "dash" || exes[1] != "sleep" {
		t.Errorf("images %v, want sh then sleep", exes)
	}
	if pid, _ := l["process"].(map[string]any)["pid"].(float64); int(pid) != c.Process.Pid {
		t.Errorf("process.pid %v, want %d", pid, c.Process.Pid)
	}
	d, _ := life["duration_ns"].(float64)
	if d < 0.2e9 || d > 2e9 {
		t.Errorf("duration %v ns, want about 0.2 s", d)
	}
	if ev, _ := life["events"].(float64); ev < 4 {
		t.Errorf("events %v, want at least fork, two execs and exit", ev)
	}
	if life["exit_status"] != 0.0 || life["forked"] != true {
		t.Errorf("exit_status %v forked %v, want 0 and true", life["exit_status"], life["forked"])
	}
	if got := p.metric("cnbridged_route_records_total", map[string]string{"route": "0", "outcome": "folded"}); got < 4 {
		t.Errorf("folded %v, want at least 4", got)
	}
}

// TestReloadSelection: a reload that changes a route's where applies the
// new one and flushes the old rate limit's counts; a reload with a where
// that does not compile keeps the running one.
func TestReloadSelection(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	m := marker(t, "reload")
	route := func(where, extra string) string {
		return selConfig(fmt.Sprintf(`  - match: "1.1"
    events: [exec]
    enrich: true
    sinks: [out]
    where: '%s'
%s`, where, extra))
	}
	has := func(arg string) string { return fmt.Sprintf(`process.cmdline.exists(a, a == "%s")`, arg) }
	dir := t.TempDir()
	p := startBinary(t, raceBinary(t), dir, route(has(m+"-one"),
		"    rate_limit: {events_per_second: 0.001, burst: 1, per: [process.exe], report_every: 1h}\n"))
	suppressedLines := func() (recs []map[string]any) {
		for _, l := range objects(t, p.outPath()) {
			if l["type"] == "suppressed" {
				recs = append(recs, l)
			}
		}
		return recs
	}
	suppressed := func() float64 {
		return p.metric("cnbridged_route_records_total", map[string]string{"route": "0", "outcome": "suppressed"})
	}
	// One sent, one suppressed: reported at the next tick (a key's first
	// report is due at once), the next ones not for an hour.
	runAll(t, shMarked(m+"-one"), shMarked(m+"-one"))
	cntest.WaitFor(t, 20*time.Second, "the first suppression report", func() bool { return len(suppressedLines()) == 1 })
	runAll(t, shMarked(m+"-one"), shMarked(m+"-one"))
	cntest.WaitFor(t, 20*time.Second, "two more suppressed", func() bool { return suppressed() == 3 })
	reloads := func(result string) float64 {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": result})
	}
	writeAtomic(t, p.config, strings.ReplaceAll(route(has(m+"-two"), ""), "%DIR%", dir))
	cntest.WaitFor(t, 20*time.Second, "a successful reload", func() bool { return reloads("success") >= 1 })
	count := func(arg string) (n int) {
		for _, l := range objects(t, p.outPath()) {
			if slices.Contains(cmdline(l), arg) {
				n++
			}
		}
		return n
	}
	// The reload flushed the two the hour would have held back.
	var recs []map[string]any
	cntest.WaitFor(t, 10*time.Second, "the old rate limit's counts", func() bool {
		recs = suppressedLines()
		return len(recs) > 1
	})
	if len(recs) != 2 || recs[0]["count"] != 1.0 || recs[1]["count"] != 2.0 {
		t.Errorf("suppression records: %v, want counts 1 (a tick) and 2 (the reload)", recs)
	}
	if n := count(m + "-one"); n != 1 {
		t.Errorf("%d execs of the first where sent, want 1 (burst 1)", n)
	}
	runAll(t, shMarked(m+"-one"))
	runAll(t, shMarked(m+"-two"))
	cntest.WaitFor(t, 20*time.Second, "the new where's exec", func() bool { return count(m+"-two") == 1 })
	if n := count(m + "-one"); n != 1 {
		t.Errorf("%d execs with the old where's argument, want only the first (before the reload)", n)
	}

	writeAtomic(t, p.config, strings.ReplaceAll(route(`process.cmdline.exists(a, a == "`+m+`-one")) &&`, ""), "%DIR%", dir))
	cntest.WaitFor(t, 20*time.Second, "a failed reload", func() bool { return reloads("failure") >= 1 })
	if !strings.Contains(p.stderr.String(), "routes[0].where") {
		t.Errorf("the failed reload's log does not name routes[0].where:\n%s", p.stderr.String())
	}
	runAll(t, shMarked(m+"-one"))
	runAll(t, shMarked(m+"-two"))
	cntest.WaitFor(t, 20*time.Second, "the kept where's exec", func() bool { return count(m+"-two") == 2 })
	if n := count(m + "-one"); n != 1 {
		t.Errorf("%d execs with the old where's argument after the bad reload, want 1", n)
	}
}
