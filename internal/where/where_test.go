package where_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/where"
)

// execLine is an enriched exec of curl as root outside any container,
// under sshd.
const execLine = `{"time":"2026-12-06T10:00:00.000000000Z","host":"web-1","idx":1,"val":1,"seq":7,"ack":0,"flags":0,"len":40,"sender":0,` +
	`"proc":{"event":"exec","cpu":1,"timestamp_ns":5,"pid":4711,"tgid":4711},` +
	`"process":{"entity_id":"b:4711:9","pid":4711,"tgid":4711,"ppid":100,"exe":"/usr/bin/curl","cmdline":["curl","-s","https://example.org"],` +
	`"cwd":"/root","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"curl","cgroup":"/user.slice","start_time":"2026-12-06T10:00:00.000000000Z"},` +
	`"parent":{"entity_id":"b:100:1","pid":100,"exe":"/usr/bin/bash","cmdline":["-bash"]},` +
	`"ancestors":[{"entity_id":"b:100:1","pid":100,"exe":"/usr/bin/bash"},{"entity_id":"b:90:1","pid":90,"exe":"/usr/sbin/sshd"}]}`

// containerExec is an exec in a container, of a route without ancestors.
const containerExec = `{"time":"t","host":"node-3","idx":1,"val":1,"proc":{"event":"exec","cpu":0,"timestamp_ns":9,"pid":50,"tgid":50},` +
	`"process":{"pid":50,"exe":"/usr/bin/cc","cmdline":[],"uid":1000,"user":"ci","container_id":"abc123","pod_uid":"pod-7"}}`

// plainFork is a fork of a route without enrichment.
const plainFork = `{"time":"t","host":"h","idx":1,"val":1,"seq":1,"ack":0,"flags":0,"len":40,"sender":0,` +
	`"proc":{"event":"fork","cpu":0,"timestamp_ns":9,"parent_pid":1,"parent_tgid":1,"child_pid":2,"child_tgid":2}}`

const suppressedLine = `{"time":"t","host":"ci-7","type":"suppressed","route":1,"key":{"process.exe":"/usr/bin/cc","process.uid":"1000"},"count":1234,"from":"a","to":"b"}`

const lifeLine = `{"time":"t","host":"h","type":"life","process":{"entity_id":"e","pid":7,"exe":"/usr/bin/sleep","cmdline":["sleep","0.2"]},` +
	`"life":{"start":"s","end":"e","duration_ns":200000789,"forked":true,"execs":[{"time":"t1","exe":"/usr/bin/sh","cmdline":["sh","-c","exec sleep 0.2"]},` +
	`{"time":"t2","exe":"/usr/bin/sleep","cmdline":["sleep","0.2"]}],"events":4,"exit_code":0,"exit_status":0}}`

const lossLine = `{"time":"t","host":"h","type":"loss","idx":1,"val":1,"cpu":0,"sender":0,"from_seq":5,"to_seq":9,"lost":5}`

func parse(t testing.TB, line string) *fields.Record {
	t.Helper()
	r, err := fields.ParseStrict([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEval: names, types and presence as the package doc states them.
func TestEval(t *testing.T) {
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, expr, line string
		want             bool
		err              string // an evaluation error containing this
	}{
		{"the issue's example, no container", `proc.event == "exec" && process.exe.endsWith("/curl") && has(process.container_id)`, execLine, false, ""},
		{"the issue's example, in a container", `proc.event == "exec" && process.exe.endsWith("/cc") && has(process.container_id)`, containerExec, true, ""},
		{"reading an absent member is an error", `process.container_id == ""`, execLine, false, "no such key: container_id"},
		{"optional read of an absent member", `process.?container_id.orValue("") == ""`, execLine, true, ""},
		{"optional read of a present member", `process.?container_id.orValue("") == "abc123"`, containerExec, true, ""},
		{"uid 0 is present", `has(process.uid) && process.uid == 0`, execLine, true, ""},
		{"numbers are ints", `process.pid + 1 == 4712 && idx == 1 && proc.timestamp_ns > 0`, execLine, true, ""},
		{"lists are lists", `process.cmdline.size() == 3 && "-s" in process.cmdline && process.cmdline[0] == "curl"`, execLine, true, ""},
		{"an empty list is present", `has(process.cmdline) && process.cmdline.size() == 0`, containerExec, true, ""},
		{"an index out of range is an error", `process.cmdline[5] == "x"`, execLine, false, "index out of bounds"},
		{"ancestors by exists", `ancestors.exists(a, a.exe == "/usr/sbin/sshd")`, execLine, true, ""},
		{"ancestors by index", `ancestors[1].pid == 90`, execLine, true, ""},
		{"absent ancestors read as an empty list", `ancestors.size() == 0 && !ancestors.exists(a, a.exe == "/usr/sbin/sshd")`, containerExec, true, ""},
		{"parent", `parent.exe == "/usr/bin/bash" && parent.cmdline == ["-bash"]`, execLine, true, ""},
		{"absent parent: has is false", `!has(parent.exe)`, containerExec, true, ""},
		{"absent parent: reading is an error", `parent.exe == "/usr/bin/bash"`, containerExec, false, "no such key: exe"},
		{"no process: has is false", `!has(process.container_id)`, plainFork, true, ""},
		{"no process: reading is an error", `process.exe == ""`, plainFork, false, "no such key: exe"},
		{"fork members", `proc.event == "fork" && proc.child_pid == 2 && !has(proc.pid)`, plainFork, true, ""},
		{"an absent top-level member is an error", `type == "loss"`, plainFork, false, "no such attribute: type"},
		{"a present top-level member", `type == "loss" && lost == 5`, lossLine, true, ""},
		{"has on a top-level member through record", `!has(record.type) && has(record.proc)`, plainFork, true, ""},
		{"record holds the same members", `record.process.exe == process.exe && record.host == host`, execLine, true, ""},
		{"string functions of the strings extension", `process.exe.lastIndexOf("/") == 8 && host.upperAscii() == "WEB-1"`, execLine, true, ""},
		{"regular expressions", `process.cmdline.exists(a, a.matches("^https://"))`, execLine, true, ""},
		{"or absorbs an error", `process.container_id == "x" || true`, execLine, true, ""},
		{"a suppression record's key", `type == "suppressed" && key["process.exe"] == "/usr/bin/cc" && count > 1000 && !has(record.overflow)`, suppressedLine, true, ""},
		{"a life's images", `life.execs.size() == 2 && life.execs[0].exe == "/usr/bin/sh" && life.exit_status == 0 && life.duration_ns > 100000000`, lifeLine, true, ""},
		{"a life that ended is not open", `!has(life.end) && life.?open.orValue(false) == false`, lifeLine, false, ""},
		// README's five routes.
		{"README: containers only, no", `has(process.container_id)`, execLine, false, ""},
		{"README: drop a CI's compilers, cc", `!process.?exe.orValue("").matches("/(cc|cc1|cc1plus|collect2|as|ld|gcc|g\\+\\+|clang|rustc)$")`, containerExec, false, ""},
		{"README: drop a CI's compilers, curl", `!process.?exe.orValue("").matches("/(cc|cc1|cc1plus|collect2|as|ld|gcc|g\\+\\+|clang|rustc)$")`, execLine, true, ""},
		{"README: drop a CI's compilers, no process", `!process.?exe.orValue("").matches("/(cc|cc1|cc1plus|collect2|as|ld|gcc|g\\+\\+|clang|rustc)$")`, plainFork, true, ""},
		{"README: only root", `process.uid == 0 || process.euid == 0`, execLine, true, ""},
		{"README: only root, ci", `process.uid == 0 || process.euid == 0`, containerExec, false, "no such key: euid"},
		{"README: children of sshd", `parent.?exe.orValue("") == "/usr/sbin/sshd" || ancestors.exists(a, a.exe == "/usr/sbin/sshd")`, execLine, true, ""},
		{"README: children of sshd, no", `parent.?exe.orValue("") == "/usr/sbin/sshd" || ancestors.exists(a, a.exe == "/usr/sbin/sshd")`, containerExec, false, ""},
		{"README: one pod", `process.?pod_uid.orValue("") == "pod-7"`, containerExec, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := env.Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.expr, err)
			}
			got, err := x.Eval(parse(t, tt.line))
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Eval: %v, want %v", err, tt.want)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Eval: %v, %v; want an error containing %q", got, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Eval = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCompileErrors: typos and type errors fail at compile, with the
// column (from 1) of the problem.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{`process.exee == "/bin/sh"`, `column 8: undefined field 'exee'`},
		{`prcess.exe == "/bin/sh"`, `column 1: undeclared reference to 'prcess' (did you mean 'process'?)`},
		{`process.uid == "0"`, `column 13: found no matching overload for '_==_' applied to '(int, string)'`},
		{`process.exe`, `column 1: the expression's type is string, want bool (true selects the record)`},
		{"proc.event == 'exec' &&\n  parent.exee == ''", `line 2 column 9: undefined field 'exee'`},
		{`proc.event == `, `column 15: Syntax error: mismatched input '<EOF>' expecting`},
		{`  `, `empty expression`},
		{`process.cmdline.exists(a, process.cmdline.exists(b, a + b == "x"))`, `over the limit 1000000`},
		{`cnbridged.Process{exe: "x"}.exe == "x"`, ``}, // refused at evaluation, see TestNoConstruction
	}
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, err := env.Compile(tt.expr)
		if tt.want == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%q) = %v, want an error containing %q", tt.expr, err, tt.want)
		}
		var we *where.Error
		if err != nil && !errors.As(err, &we) {
			t.Errorf("Compile(%q) = %T, want a *where.Error", tt.expr, err)
		}
	}
}

// TestNoConstruction: an expression reads records; it cannot build the
// model's objects.
func TestNoConstruction(t *testing.T) {
	x, err := where.Compile(`cnbridged.Process{exe: "x"}.exe == "x"`)
	if err != nil {
		return // refused at compile: as good
	}
	if ok, err := x.Eval(parse(t, execLine)); ok || err == nil {
		t.Errorf("Eval = %v, %v; want an error", ok, err)
	}
}

// TestPaths: Compile names the members an expression reads, through
// has(), optional selection, indexes, comprehensions and record.
func TestPaths(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`proc.event == "exec" && process.exe.endsWith("/curl") && has(process.container_id)`, []string{"proc.event", "process.container_id", "process.exe"}},
		{`process.?pod_uid.orValue("") == "p"`, []string{"process.pod_uid"}},
		{`ancestors.exists(a, a.exe.endsWith("/sshd"))`, []string{"ancestors", "ancestors.exe"}},
		{`ancestors[0].pid == 1`, []string{"ancestors.pid"}},
		{`process.cmdline[process.pid] == "x"`, []string{"process.cmdline", "process.pid"}},
		{`record.parent.exe == "x" && has(record.type)`, []string{"parent.exe", "type"}},
		{`[1, 2].exists(process, process == 1)`, nil},
		{`host == "a"`, []string{"host"}},
	}
	for _, tt := range tests {
		x, err := where.Compile(tt.expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		if diff := cmp.Diff(tt.want, x.Paths); diff != "" {
			t.Errorf("Paths of %q (-want +got):\n%s", tt.expr, diff)
		}
	}
	x, _ := where.Compile(`parent.exe == "x"`)
	if !x.Reads("parent") || x.Reads("process") || !x.Reads("parent.exe") {
		t.Errorf("Reads: got parent %v, process %v, parent.exe %v; want true, false, true", x.Reads("parent"), x.Reads("process"), x.Reads("parent.exe"))
	}
}

// TestCostLimit: a cheap expression over a record far larger than the
// estimate assumes stops at the runtime limit.
func TestCostLimit(t *testing.T) {
	x, err := where.Compile(`process.cmdline.exists(a, a.contains("needle"))`)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cost > where.CostLimit || x.Cost == 0 {
		t.Fatalf("Cost = %d, want within 1..%d", x.Cost, where.CostLimit)
	}
	big := strings.Repeat("a", 1<<16)
	args := make([]string, 1000)
	for i := range args {
		args[i] = big
	}
	r := &fields.Record{Process: fields.Some(fields.Process{Cmdline: fields.Some(args)})}
	if ok, err := x.Eval(r); ok || err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Errorf("Eval = %v, %v; want the cost limit", ok, err)
	}
}

// TestFieldsCoverModel: every member of the model is a name, and nested
// objects have their members under them.
func TestFieldsCoverModel(t *testing.T) {
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range env.Fields() {
		got[f.Path] = f.Type
	}
	for path, typ := range map[string]string{
		"idx": "int", "host": "string", "type": "string", "proc": "cnbridged.Proc", "proc.event": "string",
		"proc.signal": "string", "process.cmdline": "list(string)", "process.uid": "int", "process.container_id": "string",
		"ancestors": "list(cnbridged.Ancestor)", "ancestors.exe": "string", "parent.cmdline": "list(string)",
	} {
		if got[path] != typ {
			t.Errorf("Fields: %s is %q, want %q", path, got[path], typ)
		}
	}
}

// TestConcurrentEval: one compiled expression evaluated from many
// goroutines over different records gives each record's answer (Eval
// reuses its activations).
func TestConcurrentEval(t *testing.T) {
	x, err := where.Compile(`process.exe.endsWith("/curl") && record.host == "web-1" && proc.pid == 4711`)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := parse(t, execLine), parse(t, containerExec)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r, want := yes, true
				if (g+i)%2 == 1 {
					r, want = no, false
				}
				if got, err := x.Eval(r); got != want || err != nil {
					t.Errorf("Eval = %v, %v; want %v", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
