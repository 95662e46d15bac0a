package event_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// textCase is one line to render: either a record the real encoder turns
// into its JSON line, or a JSON line written out (enrichment and the
// markers other parts of the daemon produce, per the contract in README.md).
type textCase struct {
	name   string
	record *event.Record
	json   string
}

func rec(r event.Record) *event.Record { return &r }

const jt = `"time":"2024-03-09T12:34:56.000000789Z","host":"h"`

// textCases covers every event type and every marker.
var textCases = []textCase{
	{name: "fork", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 100, ParentTGID: 100, ChildPID: 4711, ChildTGID: 4711}))},
	{name: "fork thread", json: `{` + jt + `,"idx":1,"val":1,"seq":1,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"fork","cpu":0,"timestamp_ns":1,"parent_pid":4711,"parent_tgid":4711,"child_pid":4712,"child_tgid":4711,"thread":true}}`},
	{name: "exec", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4711, TGID: 4711}))},
	{name: "exit 0", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitSignal: 17, HasParent: true, ParentPID: 100, ParentTGID: 100}))},
	{name: "exit 3", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 3 << 8, ExitSignal: 17}))},
	{name: "exit SIGSEGV core", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 11 | 0x80, ExitSignal: 17}))},
	{name: "exit SIGKILL", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 9, ExitSignal: 17}))},
	{name: "uid", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcUID, PID: 4711, TGID: 4711, RUID: 1000, EUID: 0}))},
	{name: "gid", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcGID, PID: 4711, TGID: 4711, RGID: 1000, EGID: 1000}))},
	{name: "sid", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcSID, PID: 4711, TGID: 4711}))},
	{name: "ptrace", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcPtrace, PID: 4711, TGID: 4711, TracerPID: 99, TracerTGID: 99}))},
	{name: "ptrace detach", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcPtrace, PID: 4711, TGID: 4711}))},
	{name: "comm", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcComm, PID: 4711, TGID: 4711, Comm: comm("kworker/u8:2")}))},
	{name: "comm with spaces", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcComm, PID: 4711, TGID: 4711, Comm: comm("Web Content\n")}))},
	{name: "coredump", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcCoredump, PID: 4711, TGID: 4711, HasParent: true, ParentPID: 100, ParentTGID: 100}))},
	{name: "ack", record: rec(procRecord(cnmsg.ProcEvent{What: cnmsg.ProcNone}))},
	{name: "other connector id", record: rec(event.Record{Time: testTime, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 11, Val: 3}, Seq: 7, Len: 4, Data: []byte("ping")}})},
	{name: "loss", record: rec(event.Record{Kind: event.KindLoss, Time: testTime, Msg: cnmsg.Message{ID: procID}, Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 1200, ToSeq: 1203, Lost: 4}})},
	{name: "loss one", record: rec(event.Record{Kind: event.KindLoss, Time: testTime, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 11, Val: 3}}, Loss: event.Loss{FromSeq: 9, ToSeq: 9, Lost: 1}})},
	{name: "gap", json: `{` + jt + `,"type":"gap","reason":"not_listening","from":"2024-03-09T12:30:00Z","to":"2024-03-09T12:34:56Z","pids_allocated":812}`},
	{name: "exec enriched", json: `{` + jt + `,"idx":1,"val":1,"seq":5,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":1,"pid":4711,"tgid":4711},` +
		`"process":{"entity_id":"b:4711:1","pid":4711,"tgid":4711,"ppid":100,"exe":"/usr/bin/ls","cmdline":["ls","-l","/tmp/a b"],"cwd":"/root","uid":1000,"euid":1000,"gid":1000,"egid":1000,"user":"alice","comm":"ls","cgroup":"/user.slice","start_time":"2024-03-09T12:34:56Z","previous_exe":"/usr/bin/bash"},` +
		`"parent":{"entity_id":"b:100:1","pid":100,"exe":"/usr/bin/bash","cmdline":["bash"]}}`},
	{name: "exec enriched argv0 differs, truncated, container", json: `{` + jt + `,"idx":1,"val":1,"seq":5,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":1,"pid":4711,"tgid":4711},` +
		`"process":{"pid":4711,"ppid":1,"exe":"/usr/bin/busybox","cmdline":["sh","-c","sleep 1"],"cmdline_truncated":true,"uid":0,"comm":"sh","container_id":"0123456789abcdef0123"}}`},
	{name: "exit enriched with duration", json: `{` + jt + `,"idx":1,"val":1,"seq":6,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exit","cpu":0,"timestamp_ns":2,"pid":4711,"tgid":4711,"exit_code":256,"exit_signal":17,"exit_status":1},` +
		`"process":{"pid":4711,"ppid":100,"exe":"/usr/bin/make","cmdline":["make","test"],"uid":1000,"user":"alice","comm":"make","duration_ns":83250000000}}`},
	{name: "exit thread enriched", json: `{` + jt + `,"idx":1,"val":1,"seq":6,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exit","cpu":0,"timestamp_ns":2,"pid":4712,"tgid":4711,"exit_code":0,"exit_signal":0,"exit_status":0,"thread":true},` +
		`"process":{"pid":4711,"ppid":100,"exe":"/usr/bin/java","cmdline":["java","-jar","app.jar"],"uid":1000,"comm":"java","duration_ns":1500}}`},
	{name: "fork enriched", json: `{` + jt + `,"idx":1,"val":1,"seq":7,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"fork","cpu":0,"timestamp_ns":3,"parent_pid":100,"parent_tgid":100,"child_pid":4713,"child_tgid":4713},` +
		`"process":{"pid":4713,"ppid":100,"exe":"/usr/bin/bash","cmdline":["bash"],"uid":0,"comm":"bash"}}`},
	{name: "missing exe and cmdline", json: `{` + jt + `,"idx":1,"val":1,"seq":8,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":4,"pid":4714,"tgid":4714},` +
		`"process":{"pid":4714,"ppid":100,"exe":"","cmdline":[],"uid":0,"user":"root","comm":"go","missing":["exe","cmdline","cwd"]}}`},
	{name: "escape sequence in comm", json: `{` + jt + `,"idx":1,"val":1,"seq":8,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":4,"pid":4714,"tgid":4714},` +
		`"process":{"pid":4714,"ppid":100,"exe":"","cmdline":[],"uid":0,"comm":"\u001b[2Jevil","missing":["exe","cmdline"]}}`},
	{name: "gone", json: `{` + jt + `,"idx":1,"val":1,"seq":8,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":4,"pid":4714,"tgid":4714},"process":{"gone":true}}`},
	{name: "skipped", json: `{` + jt + `,"idx":1,"val":1,"seq":9,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":4,"pid":4715,"tgid":4715},"process":{"skipped":true}}`},
	// Enriched records through the real encoder, so that the text format
	// follows the JSON field names the encoder writes.
	{name: "encoder: exec enriched", record: rec(event.Record{Time: testTime, Msg: cnmsg.Message{ID: procID, Seq: 42, Len: 40}, HasProc: true,
		Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4711, TGID: 4711}, Enrich: event.EnrichDone,
		Enriched: &event.Enrichment{Process: &proc.Process{EntityID: "b:4711:9", PID: 4711, TGID: 4711, PPID: 100,
			Exe: "/usr/bin/grep", Cmdline: []string{"grep", "-r", "needle", "/srv"}, User: "bob", UID: 1001, Comm: "grep", PreviousExe: "/usr/bin/bash"}}})},
	{name: "encoder: exit enriched", record: rec(event.Record{Time: testTime, Msg: cnmsg.Message{ID: procID, Seq: 43, Len: 40}, HasProc: true,
		Proc:   cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 2 << 8, ExitSignal: 17, HasParent: true, ParentPID: 100, ParentTGID: 100},
		Enrich: event.EnrichDone, Enriched: &event.Enrichment{DurationNs: 2500000, HasDuration: true,
			Process: &proc.Process{EntityID: "b:4711:9", PID: 4711, TGID: 4711, PPID: 100,
				Exe: "/usr/bin/grep", Cmdline: []string{"grep", "-r", "needle", "/srv"}, User: "bob", UID: 1001, Comm: "grep"}}})},
	{name: "encoder: exec gone before its read", record: rec(event.Record{Time: testTime, Msg: cnmsg.Message{ID: procID, Seq: 44, Len: 40}, HasProc: true,
		Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4717, TGID: 4717}, Enrich: event.EnrichDone,
		Enriched: &event.Enrichment{Process: &proc.Process{EntityID: "b:4717:9", PID: 4717, TGID: 4717, PPID: 100, User: "bob", UID: 1001,
			Missing: []string{"exe", "cmdline", "cwd", "comm"}}}})},
	{name: "encoder: exit_lost", record: rec(event.Record{Kind: event.KindExitLost, Time: testTime,
		Enriched: &event.Enrichment{Process: &proc.Process{EntityID: "b:4716:9", PID: 4716, TGID: 4716, PPID: 100,
			Exe: "/usr/bin/sleep", Cmdline: []string{"sleep", "60"}, Comm: "sleep"}}})},
	{name: "exit_lost", json: `{` + jt + `,"type":"exit_lost","process":{"pid":4716,"ppid":100,"exe":"/usr/bin/sleep","cmdline":["sleep","60"],"uid":0,"comm":"sleep","duration_ns":61000000000}}`},
	{name: "encoder: suppressed", record: rec(event.Record{Kind: event.KindSuppressed, Time: testTime, Suppressed: &event.Suppressed{Route: 2,
		Key: []event.KeyValue{{Path: "process.exe", Value: "/usr/bin/cc"}, {Path: "process.uid", Value: "1000"}}, Count: 1234, From: testTime - 10e9, To: testTime - 1e6}})},
	{name: "encoder: suppressed overflow", record: rec(event.Record{Kind: event.KindSuppressed, Time: testTime, Suppressed: &event.Suppressed{Route: 0,
		Overflow: true, Count: 1, From: testTime - 2e9, To: testTime - 2e9}})},
	{name: "encoder: life", record: rec(event.Record{Kind: event.KindLife, Time: testTime, Life: testLife()})},
	{name: "encoder: life open, killed", record: rec(event.Record{Kind: event.KindLife, Time: testTime, Life: &event.Life{
		Process: fields.Some(fields.Process{EntityID: fields.Some("b:4720:9"), PID: fields.Some[int64](4720), Exe: fields.Some("/usr/bin/top"), Cmdline: fields.Some([]string{"top"})}),
		Life:    fields.Life{Start: fields.Some("2024-03-09T12:00:00.000000000Z"), Events: 1, Open: fields.Some(true), Signal: fields.Some(fields.Signal("SIGKILL"))}}})},
}

// testLife is sh -c 'exec sleep 0.2' folded.
func testLife() *event.Life {
	return &event.Life{
		Process: fields.Some(fields.Process{EntityID: fields.Some("b:4717:9"), PID: fields.Some[int64](4717), TGID: fields.Some[int64](4717), PPID: fields.Some[int64](100),
			Exe: fields.Some("/usr/bin/sleep"), Cmdline: fields.Some([]string{"sleep", "0.2"}), UID: fields.Some[int64](1000), User: fields.Some("bob"),
			Comm: fields.Some("sleep"), StartTime: fields.Some("2024-03-09T12:34:56.000000000Z")}),
		Parent:    fields.Some(fields.Parent{EntityID: fields.Some("b:100:1"), PID: fields.Some[int64](100), Exe: fields.Some("/usr/bin/bash"), Cmdline: fields.Some([]string{"bash"})}),
		Ancestors: []fields.Ancestor{{EntityID: fields.Some("b:1:0"), PID: fields.Some[int64](1), Exe: fields.Some("/sbin/init")}},
		Life: fields.Life{Start: fields.Some("2024-03-09T12:34:56.000000000Z"), End: fields.Some("2024-03-09T12:34:56.200000789Z"), DurationNs: fields.Some[int64](200000789),
			Forked: true, Events: 4, ExitCode: fields.Some[int64](0), ExitStatus: fields.Some[int64](0),
			Execs: []fields.Image{{Time: "2024-03-09T12:34:56.000100000Z", Exe: "/usr/bin/sh", Cmdline: []string{"sh", "-c", "exec sleep 0.2"}},
				{Time: "2024-03-09T12:34:56.000200000Z", Exe: "/usr/bin/sleep", Cmdline: []string{"sleep", "0.2"}}}},
	}
}

func (c textCase) line(t *testing.T) []byte {
	t.Helper()
	if c.record != nil {
		return event.NewEncoder("h").AppendJSON(nil, c.record)
	}
	return []byte(c.json + "\n")
}

// TestTextGolden renders every case, without and with colour, and compares
// with testdata/text.golden and testdata/text-color.golden (go test -update
// rewrites them).
func TestTextGolden(t *testing.T) {
	for _, color := range []bool{false, true} {
		f := &event.TextFormatter{Color: color}
		var got bytes.Buffer
		got.WriteString(f.TextHeader())
		for _, c := range textCases {
			out, err := f.AppendText(nil, c.line(t))
			if err != nil {
				t.Fatalf("%s: AppendText: %v", c.name, err)
			}
			if bytes.Count(out, []byte("\n")) != 1 || !bytes.HasSuffix(out, []byte("\n")) {
				t.Errorf("%s: %q is not exactly one line", c.name, out)
			}
			got.WriteString("# " + c.name + "\n")
			got.Write(out)
		}
		name := "text.golden"
		if color {
			name = "text-color.golden"
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read golden file (go test -update writes it): %v", err)
		}
		if diff := cmp.Diff(string(want), got.String()); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
		}
	}
}

// TestTextNoColorHasNoEscapes: without Color, no ANSI escape reaches the
// output, whatever the input holds.
func TestTextNoColorHasNoEscapes(t *testing.T) {
	f := &event.TextFormatter{}
	for _, c := range textCases {
		out, err := f.AppendText(nil, c.line(t))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if bytes.ContainsRune(out, 0x1b) {
			t.Errorf("%s: %q holds an escape character", c.name, out)
		}
	}
}

// TestTextColumnsAligned: the pid column of every process event row ends
// where the header's does.
func TestTextColumnsAligned(t *testing.T) {
	f := &event.TextFormatter{}
	header := f.TextHeader()
	end := strings.Index(header, "PID") + len("PID")
	for _, c := range textCases {
		if strings.Contains(c.json, `"type"`) || (c.record != nil && (c.record.Kind != event.KindMessage || !c.record.HasProc)) {
			continue
		}
		out, _ := f.AppendText(nil, c.line(t))
		if len(out) < end+1 || out[end-1] == ' ' || out[end] != ' ' {
			t.Errorf("%s: pid column does not end at byte %d:\n%s%s", c.name, end, header, out)
		}
	}
}

func TestTextRejectsNonJSON(t *testing.T) {
	f := &event.TextFormatter{}
	if _, err := f.AppendText(nil, []byte("not json\n")); err == nil {
		t.Error("AppendText(not json) returned no error")
	}
}

// TestTextWidth: with a width, rows are cut to it (colour codes take no
// column) and end in "…"; short rows are left alone.
func TestTextWidth(t *testing.T) {
	var long textCase
	for _, c := range textCases {
		if c.name == "exec enriched" {
			long = c
		}
	}
	for _, color := range []bool{false, true} {
		f := &event.TextFormatter{Width: 80, Color: color}
		out, err := f.AppendText(nil, long.line(t))
		if err != nil {
			t.Fatal(err)
		}
		row := strings.TrimSuffix(string(out), "\n")
		plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(row, "")
		if n := utf8.RuneCountInString(plain); n != 80 || !strings.HasSuffix(plain, "…") {
			t.Errorf("color %v: row is %d columns %q, want 80 ending in …", color, n, plain)
		}
		f.Width = 500
		out, _ = f.AppendText(nil, long.line(t))
		if strings.Contains(string(out), "…") {
			t.Errorf("row cut although it fits in 500 columns: %q", out)
		}
	}
}

// TestTableRowText: a row of the process table (a fleet query's answer)
// gets the events' columns: "live", its age, the process; indented by
// depth in a tree; and an exited one says so with how long it ran.
func TestTableRowText(t *testing.T) {
	const row = `{"time":"2024-03-09T12:34:56.000000789Z","host":"web-1","process":{"entity_id":"b:4711:1","pid":4711,"tgid":4711,"ppid":100,` +
		`"exe":"/usr/bin/nc","cmdline":["nc","-l","4444"],"cwd":"/","uid":1000,"euid":1000,"gid":1000,"egid":1000,"user":"alice","comm":"nc",` +
		`"cgroup":"/","start_time":"2024-03-09T12:30:51.000000000Z"},"parent":{"entity_id":"b:100:1","pid":100,"exe":"/usr/bin/bash","cmdline":["bash"]}}`
	const exited = `{"time":"2024-03-09T12:34:56.000000789Z","host":"web-1","process":{"pid":100,"ppid":1,"exe":"/usr/bin/bash","cmdline":["bash"],` +
		`"uid":0,"user":"root","start_time":"2024-03-09T12:00:00Z","duration_ns":1500000000,"exited":true}}`
	f := &event.TextFormatter{Host: true}
	tests := []struct {
		line  string
		depth int
		want  string
	}{
		{row, 0, "12:34:56.000 web-1    live        4711     100 alice                     4m05s /usr/bin/nc -l 4444\n"},
		{row, 2, "12:34:56.000 web-1    live        4711     100 alice                     4m05s     /usr/bin/nc -l 4444\n"},
		{exited, 1, "12:34:56.000 web-1    exited       100       1 root                      1.50s   /usr/bin/bash\n"},
	}
	for _, tt := range tests {
		got, err := f.AppendRow(nil, []byte(tt.line), tt.depth)
		if err != nil || string(got) != tt.want {
			t.Errorf("AppendRow depth %d:\n got %q (%v)\nwant %q", tt.depth, got, err, tt.want)
		}
	}
	if got, err := f.AppendText(nil, []byte(row)); err != nil || string(got) != tests[0].want {
		t.Errorf("AppendText of a row: %q (%v)", got, err)
	}
	if _, err := f.AppendRow(nil, []byte(`{"time":"x","host":"h","type":"loss"}`), 0); err == nil {
		t.Error("AppendRow of a loss marker: no error")
	}
}
