package tap

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/where"
)

// Lines as the daemon writes them (enriched ones with the process table's
// fields from the shared event contract).
var testLines = map[string]string{
	"exec_bash": `{"time":"2026-11-30T10:00:00.000000001Z","host":"web1","idx":1,"val":1,"proc":{"event":"exec","cpu":0,"pid":200,"tgid":200},` +
		`"process":{"entity_id":"web1:200:5","pid":200,"ppid":100,"exe":"/usr/bin/bash","comm":"bash","cmdline":["bash","-c","ls"],"uid":1000,"container_id":"abcdef0123456789"},` +
		`"parent":{"entity_id":"web1:100:4","pid":100,"exe":"/usr/sbin/sshd"},"ancestors":[{"entity_id":"web1:100:4","pid":100,"exe":"/usr/sbin/sshd"},{"entity_id":"web1:1:1","pid":1,"exe":"/usr/lib/systemd/systemd"}]}`,
	"fork_web2": `{"time":"2026-11-30T10:00:01Z","host":"web2","idx":1,"val":1,"proc":{"event":"fork","cpu":1,"parent_pid":300,"parent_tgid":300,"child_pid":301,"child_tgid":301}}`,
	"exit_ls": `{"time":"2026-11-30T10:00:02Z","host":"web1","idx":1,"val":1,"proc":{"event":"exit","cpu":0,"pid":201,"tgid":201,"exit_code":256,"exit_signal":17,"parent_pid":200,"parent_tgid":200,"exit_status":1},` +
		`"process":{"entity_id":"web1:201:6","pid":201,"ppid":200,"exe":"/usr/bin/ls","comm":"ls","cmdline":["ls","/nope"],"uid":1000,"duration_ns":1500000},` +
		`"ancestors":[{"entity_id":"web1:200:5","pid":200,"exe":"/usr/bin/bash"},{"entity_id":"web1:100:4","pid":100,"exe":"/usr/sbin/sshd"}]}`,
	"comm_web2": `{"time":"2026-11-30T10:00:03Z","host":"web2","idx":1,"val":1,"proc":{"event":"comm","cpu":1,"pid":301,"tgid":301,"comm":"kworker/u8"}}`,
	"loss_web1": `{"time":"2026-11-30T10:00:04Z","host":"web1","type":"loss","idx":1,"val":1,"cpu":0,"sender":0,"from_seq":10,"to_seq":14,"lost":5}`,
	"gap_web2":  `{"time":"2026-11-30T10:00:05Z","host":"web2","type":"gap","reason":"not_listening","from":"2026-11-30T09:59:00Z","to":"2026-11-30T10:00:00Z","pids_allocated":42}`,
	// Written by the tap server itself, to a client that read too slowly.
	"tap_dropped": `{"time":"2026-11-30T10:00:06Z","type":"tap_dropped","dropped":12}`,
}

var lineOrder = []string{"exec_bash", "fork_web2", "exit_ls", "comm_web2", "loss_web1", "gap_web2"}

func TestFilter(t *testing.T) {
	markers := []string{"loss_web1", "gap_web2"}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"none", Filter{}, lineOrder},
		{"host keeps its markers only", Filter{Hosts: []string{"web2"}}, []string{"fork_web2", "comm_web2", "gap_web2"}},
		{"event", Filter{Events: []string{"exec", "exit"}}, append([]string{"exec_bash", "exit_ls"}, markers...)},
		{"exe base name glob", Filter{Exe: "ba*"}, append([]string{"exec_bash"}, markers...)},
		{"exe path glob", Filter{Exe: "/usr/bin/*"}, append([]string{"exec_bash", "exit_ls"}, markers...)},
		{"comm glob from a comm event", Filter{Comm: "kworker*"}, append([]string{"comm_web2"}, markers...)},
		{"pid: the child of a fork", Filter{PIDs: []uint32{301}}, append([]string{"fork_web2", "comm_web2"}, markers...)},
		{"ppid", Filter{PPIDs: []uint32{200}}, append([]string{"exit_ls"}, markers...)},
		{"container prefix", Filter{Containers: []string{"abcdef012345"}}, append([]string{"exec_bash"}, markers...)},
		{"under a name: descendants via parent and ancestors", Filter{Under: "sshd"}, append([]string{"exec_bash", "exit_ls"}, markers...)},
		{"under an entity id: the process and its descendants", Filter{Under: "web1:200:5"}, append([]string{"exec_bash", "exit_ls"}, markers...)},
		{"under a deeper entity id", Filter{Under: "web1:201:6"}, append([]string{"exit_ls"}, markers...)},
		{"all together", Filter{Hosts: []string{"web1"}, Events: []string{"exit"}, Under: "sshd", Exe: "ls"}, []string{"exit_ls", "loss_web1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range lineOrder {
				l, err := Parse([]byte(testLines[k]))
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if tt.f.Match(l) {
					got = append(got, k)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matched (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterBadGlob(t *testing.T) {
	f := Filter{Exe: "[x"}
	err := f.Validate()
	if err == nil || !strings.Contains(err.Error(), "--exe") {
		t.Fatalf("Validate() = %v, want an error naming --exe", err)
	}
}

func TestFormat(t *testing.T) {
	want := `TIME         HOST     EVENT        PID    PPID USER             EXIT  DURATION PROCESS
10:00:00.000 web1     exec         200     100 1000                            /usr/bin/bash -c ls  container=abcdef012345
10:00:01.000 web2     fork         301     300 -
10:00:02.000 web1     exit         201     200 1000                1       1ms /usr/bin/ls /nope
10:00:03.000 web2     comm         301       - -                               kworker/u8
10:00:04.000 web1     LOSS     5 messages lost on 1.1 cpu 0 (seq 10..14)
10:00:05.000 web2     GAP      not listening from 2026-11-30T09:59:00Z to 2026-11-30T10:00:00Z, 42 pids allocated meanwhile
10:00:06.000 -        DROPPED  12 lines not shown: this reader was too slow
`
	var f Formatter
	got := f.Header()
	for _, k := range append(lineOrder, "tap_dropped") {
		l, err := Parse([]byte(testLines[k]))
		if err != nil {
			t.Fatal(err)
		}
		got += f.Format(l)
	}
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
}

func TestFormatColor(t *testing.T) {
	f := Formatter{Color: true}
	l, _ := Parse([]byte(testLines["exit_ls"]))
	if got := f.Format(l); !strings.Contains(got, "\x1b[31mexit") {
		t.Errorf("a failed exit is not red: %q", got)
	}
	l, _ = Parse([]byte(testLines["loss_web1"]))
	if got := f.Format(l); !strings.Contains(got, "\x1b[1;31mLOSS") {
		t.Errorf("a loss marker is not highlighted: %q", got)
	}
	f.Color = false
	if got := f.Format(l); strings.Contains(got, "\x1b") {
		t.Errorf("colour without Color: %q", got)
	}
}

// TestFormatEscapesControl: strings a process (or any publisher on the
// subject) chose are shown as the text format shows them: arguments with a
// space or a control character quoted with Go escapes, one by one, so that
// none writes a terminal escape code or fakes a column or a line.
func TestFormatEscapesControl(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{{
		name: "cmdline",
		line: `{"time":"2026-11-30T10:00:00Z","host":"web1","proc":{"event":"exec","pid":200,"tgid":200},` +
			`"process":{"pid":200,"ppid":100,"exe":"/usr/bin/echo","cmdline":["echo","\u001b]0;pwned\u0007","a b","","plain"],"uid":0}}`,
		want: `echo "\x1b]0;pwned\a" "a b" "" plain`,
	}, {
		name: "exe",
		line: `{"time":"2026-11-30T10:00:00Z","host":"web1","proc":{"event":"exec","pid":200,"tgid":200},` +
			`"process":{"pid":200,"exe":"/tmp/x\u001b[2J","uid":0}}`,
		want: `"/tmp/x\x1b[2J"`,
	}, {
		name: "comm",
		line: `{"time":"2026-11-30T10:00:00Z","host":"web1","proc":{"event":"comm","pid":301,"tgid":301,"comm":"\u001b[31mred\nfake"}}`,
		want: `"\x1b[31mred\nfake"`,
	}, {
		name: "host and event",
		line: `{"time":"2026-11-30T10:00:00Z","host":"h\u001b[2J","proc":{"event":"x\u009b1m","pid":1,"tgid":1}}`,
		want: `"h\x1b[2J"`,
	}, {
		name: "gap marker",
		line: `{"time":"2026-11-30T10:00:00Z","host":"web1","type":"gap","reason":"r\u001b[5m","from":"a\rb","to":"c"}`,
		want: `"r\x1b[5m" from "a\rb" to c`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			for _, color := range []bool{false, true} {
				f := Formatter{Color: color}
				got := f.Format(l)
				body := strings.TrimSuffix(got, "\n")
				if !color {
					for _, r := range body {
						if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
							t.Errorf("control character %U in %q", r, got)
						}
					}
				} else if n, m := strings.Count(body, "\x1b"), strings.Count(body, "\x1b[0m"); n != 2*m {
					t.Errorf("escape codes other than the tap's colours in %q", got)
				}
				if !strings.Contains(got, tc.want) {
					t.Errorf("got %q, want it to contain %q", got, tc.want)
				}
			}
		})
	}
}

// TestPPIDAsTheRowShows: --ppid selects by the parent the row's PPID
// column shows: the process table's when the line has one (here the exit
// of a reparented process: the kernel says 1, the table 500). Before,
// the filter took the kernel's and selected rows showing another PPID.
func TestPPIDAsTheRowShows(t *testing.T) {
	l, err := Parse([]byte(`{"time":"2026-11-30T10:00:02Z","host":"web1","idx":1,"val":1,"proc":{"event":"exit","cpu":0,"pid":501,"tgid":501,"parent_pid":1,"parent_tgid":1},` +
		`"process":{"entity_id":"web1:501:6","pid":501,"ppid":500,"exe":"/usr/bin/sleep"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var f Formatter
	row := strings.Fields(f.Format(l))
	if len(row) < 5 || row[4] != "500" {
		t.Fatalf("row %v: PPID column is not 500", row)
	}
	if !(&Filter{PPIDs: []uint32{500}}).Match(l) || (&Filter{PPIDs: []uint32{1}}).Match(l) {
		t.Error("--ppid 500 must select the row showing PPID 500, and --ppid 1 must not")
	}
}

// TestWhere: --where selects lines by a where expression over the field
// model (markers stay); lines it cannot evaluate are not shown, and
// counted.
func TestWhere(t *testing.T) {
	x, err := where.Compile(`process.uid == 1000 && process.exe.endsWith("/ls") && ancestors.exists(a, a.exe == "/usr/sbin/sshd")`)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	p := NewPrinter(&out, Filter{Where: x}, true, Formatter{})
	for _, k := range lineOrder {
		if err := p.Line([]byte(testLines[k])); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		for k, v := range testLines {
			if l == v {
				got = append(got, k)
			}
		}
	}
	if diff := cmp.Diff([]string{"exit_ls", "loss_web1", "gap_web2"}, got); diff != "" {
		t.Errorf("shown (-want +got):\n%s", diff)
	}
	// fork_web2 and comm_web2 carry no process: process.uid is an error,
	// which CEL's && drops when another clause is false (no ancestors).
	if p.WhereErrors != 0 {
		t.Errorf("WhereErrors %d (%v), want 0", p.WhereErrors, p.WhereError)
	}
	x, err = where.Compile(`process.uid == 1000`)
	if err != nil {
		t.Fatal(err)
	}
	p = NewPrinter(&out, Filter{Where: x}, true, Formatter{})
	for _, k := range lineOrder {
		if err := p.Line([]byte(testLines[k])); err != nil {
			t.Fatal(err)
		}
	}
	if p.WhereErrors != 2 || p.WhereError == nil || !strings.Contains(p.WhereError.Error(), "no such key: uid") {
		t.Errorf("WhereErrors %d (%v), want 2 (no such key: uid)", p.WhereErrors, p.WhereError)
	}
}
