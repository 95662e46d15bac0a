package event_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proc"
)

// testTime is 2024-03-09T12:34:56.000000789Z.
var testTime = time.Date(2024, 3, 9, 12, 34, 56, 789, time.UTC).UnixNano()

const testTimeText = "2024-03-09T12:34:56.000000789Z"

var procID = cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}

// decodeLine checks that line is one valid JSON object ending in exactly
// one newline, and decodes it with numbers kept exact.
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("line %q does not end in exactly one newline after its object", line)
	}
	if !json.Valid(line) {
		t.Fatalf("line is not valid JSON: %q", line)
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return m
}

// n is a JSON number as decodeLine returns it.
func n(v uint64) json.Number { return json.Number(strconv.FormatUint(v, 10)) }

func comm(s string) [16]byte {
	var c [16]byte
	copy(c[:], s)
	return c
}

// msgFields are the keys every message line has, for a message with the
// given cn_msg fields.
func msgFields(host string, seq uint64, length uint64, sender uint64) map[string]any {
	return map[string]any{
		"time": testTimeText, "host": host,
		"idx": n(1), "val": n(1), "seq": n(seq), "ack": n(0), "flags": n(0),
		"len": n(length), "sender": n(sender),
	}
}

func with(base map[string]any, kv map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range kv {
		m[k] = v
	}
	return m
}

func procRecord(ev cnmsg.ProcEvent) event.Record {
	return event.Record{
		Time:    testTime,
		Msg:     cnmsg.Message{ID: procID, Seq: 42, Len: 40},
		Proc:    ev,
		HasProc: true,
	}
}

func procHeader(what string) map[string]any {
	return map[string]any{"event": what, "cpu": n(3), "timestamp_ns": n(123456789012)}
}

func TestAppendJSONProc(t *testing.T) {
	hdr := cnmsg.ProcEvent{CPU: 3, TimestampNs: 123456789012}
	ev := func(f func(e *cnmsg.ProcEvent)) cnmsg.ProcEvent {
		e := hdr
		f(&e)
		return e
	}
	tests := []struct {
		name string
		ev   cnmsg.ProcEvent
		proc map[string]any // beyond event, cpu, timestamp_ns
	}{
		{"ack", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcNone; e.Err = 22 }),
			map[string]any{"err": n(22)}},
		{"fork", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcFork
			e.ParentPID, e.ParentTGID, e.ChildPID, e.ChildTGID = 1, 2, 4242, 4243
		}), map[string]any{"parent_pid": n(1), "parent_tgid": n(2), "child_pid": n(4242), "child_tgid": n(4243), "thread": true}},
		{"fork of a process", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcFork
			e.ParentPID, e.ParentTGID, e.ChildPID, e.ChildTGID = 1, 1, 4242, 4242
		}), map[string]any{"parent_pid": n(1), "parent_tgid": n(1), "child_pid": n(4242), "child_tgid": n(4242)}},
		{"exit of a thread", ev(func(e *cnmsg.ProcEvent) {
			// The kernel's exit_signal -1 (no signal to a parent), unsigned.
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 8, 7, 0, 4294967295
		}), map[string]any{"pid": n(8), "tgid": n(7), "exit_code": n(0), "exit_signal": json.Number("-1"), "exit_status": n(0), "thread": true}},
		{"exit with no signal", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 7, 7, 0, 0
		}), map[string]any{"pid": n(7), "tgid": n(7), "exit_code": n(0), "exit_signal": n(0), "exit_status": n(0)}},
		{"exec", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcExec; e.PID, e.TGID = 4242, 4241 }),
			map[string]any{"pid": n(4242), "tgid": n(4241)}},
		{"uid", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcUID
			e.PID, e.TGID, e.RUID, e.EUID = 10, 11, 1000, 0
		}), map[string]any{"pid": n(10), "tgid": n(11), "ruid": n(1000), "euid": n(0)}},
		{"gid", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcGID
			e.PID, e.TGID, e.RGID, e.EGID = 10, 11, 100, 4294967295
		}), map[string]any{"pid": n(10), "tgid": n(11), "rgid": n(100), "egid": n(4294967295)}},
		{"sid", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcSID; e.PID, e.TGID = 7, 7 }),
			map[string]any{"pid": n(7), "tgid": n(7)}},
		{"ptrace", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcPtrace
			e.PID, e.TGID, e.TracerPID, e.TracerTGID = 7, 7, 9, 9
		}), map[string]any{"pid": n(7), "tgid": n(7), "tracer_pid": n(9), "tracer_tgid": n(9)}},
		{"comm", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcComm; e.PID, e.TGID, e.Comm = 7, 7, comm("kworker/0:1") }),
			map[string]any{"pid": n(7), "tgid": n(7), "comm": "kworker/0:1"}},
		{"comm full 16 bytes", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcComm
			e.PID, e.TGID, e.Comm = 7, 7, comm("0123456789abcdef")
		}),
			map[string]any{"pid": n(7), "tgid": n(7), "comm": "0123456789abcdef"}},
		{"comm empty", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcComm; e.PID, e.TGID = 7, 7 }),
			map[string]any{"pid": n(7), "tgid": n(7), "comm": ""}},
		{"coredump", ev(func(e *cnmsg.ProcEvent) { e.What = cnmsg.ProcCoredump; e.PID, e.TGID = 7, 7 }),
			map[string]any{"pid": n(7), "tgid": n(7)}},
		{"coredump with parent", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcCoredump
			e.PID, e.TGID, e.ParentPID, e.ParentTGID, e.HasParent = 7, 7, 1, 1, true
		}), map[string]any{"pid": n(7), "tgid": n(7), "parent_pid": n(1), "parent_tgid": n(1)}},
		{"exit", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 7, 7, 256, 17
		}), map[string]any{"pid": n(7), "tgid": n(7), "exit_code": n(256), "exit_signal": n(17), "exit_status": n(1)}},
		{"exit killed", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 7, 7, 9, 17
		}), map[string]any{"pid": n(7), "tgid": n(7), "exit_code": n(9), "exit_signal": n(17), "signal": "SIGKILL", "core_dumped": false}},
		{"exit core dumped", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 7, 7, 0x8b, 17
		}), map[string]any{"pid": n(7), "tgid": n(7), "exit_code": n(0x8b), "exit_signal": n(17), "signal": "SIGSEGV", "core_dumped": true}},
		{"exit with parent", ev(func(e *cnmsg.ProcEvent) {
			e.What = cnmsg.ProcExit
			e.PID, e.TGID, e.ExitCode, e.ExitSignal = 7, 7, 0, 17
			e.ParentPID, e.ParentTGID, e.HasParent = 1, 1, true
		}), map[string]any{"pid": n(7), "tgid": n(7), "exit_code": n(0), "exit_signal": n(17), "parent_pid": n(1), "parent_tgid": n(1), "exit_status": n(0)}},
		{"unknown type", ev(func(e *cnmsg.ProcEvent) { e.What = 0x8; e.PID = 7 }),
			map[string]any{"what": n(8)}},
	}
	enc := event.NewEncoder("web-42")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := procRecord(tt.ev)
			got := decodeLine(t, enc.AppendJSON(nil, &r))
			what := tt.ev.What.String()
			want := with(msgFields("web-42", 42, 40, 0), map[string]any{"proc": with(procHeader(what), tt.proc)})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("AppendJSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendJSONData(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, ""},
		{"empty", []byte{}, ""},
		{"one byte", []byte{0xff}, "/w=="},
		{"binary", []byte{0, 1, 2, 0xfb, 0xff, '"', '\\', '\n'}, "AAEC+/8iXAo="},
		{"text", []byte("hello"), "aGVsbG8="},
	}
	enc := event.NewEncoder("h")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := event.Record{
				Time:   testTime,
				Sender: 4242,
				Msg: cnmsg.Message{
					ID: cnmsg.ID{Idx: 2718, Val: 28}, Seq: 7, Ack: 8, Flags: 9,
					Len: uint16(len(tt.data)), Data: tt.data,
				},
			}
			got := decodeLine(t, enc.AppendJSON(nil, &r))
			want := map[string]any{
				"time": testTimeText, "host": "h",
				"idx": n(2718), "val": n(28), "seq": n(7), "ack": n(8), "flags": n(9),
				"len": n(uint64(len(tt.data))), "sender": n(4242), "data": tt.want,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("AppendJSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendJSONLoss(t *testing.T) {
	tests := []struct {
		name string
		r    event.Record
		want map[string]any
	}{
		{
			name: "process connector, per CPU",
			r: event.Record{
				Kind: event.KindLoss, Time: testTime, Msg: cnmsg.Message{ID: procID},
				Loss: event.Loss{CPU: 3, HasCPU: true, FromSeq: 10, ToSeq: 19, Lost: 10},
			},
			want: map[string]any{
				"time": testTimeText, "host": "h", "type": "loss", "idx": n(1), "val": n(1),
				"cpu": n(3), "sender": n(0), "from_seq": n(10), "to_seq": n(19), "lost": n(10),
			},
		},
		{
			name: "other connector, no CPU, seq wraps",
			r: event.Record{
				Kind: event.KindLoss, Time: testTime, Sender: 77,
				Msg:  cnmsg.Message{ID: cnmsg.ID{Idx: 12, Val: 3}, Data: []byte("ignored")},
				Loss: event.Loss{FromSeq: 4294967295, ToSeq: 0, Lost: 2},
			},
			want: map[string]any{
				"time": testTimeText, "host": "h", "type": "loss", "idx": n(12), "val": n(3),
				"sender": n(77), "from_seq": n(4294967295), "to_seq": n(0), "lost": n(2),
			},
		},
	}
	enc := event.NewEncoder("h")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeLine(t, enc.AppendJSON(nil, &tt.r))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AppendJSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendJSONEscapes(t *testing.T) {
	tests := []struct {
		name     string
		host     string
		comm     string // raw bytes, at most 16
		wantHost string
		wantComm string
	}{
		{"plain", "web-42", "bash", "web-42", "bash"},
		{"quotes and backslashes", `a"b\c`, `x"\y`, `a"b\c`, `x"\y`},
		{"named controls", "a\nb\rc\td", "\n\r\t", "a\nb\rc\td", "\n\r\t"},
		{"other controls", "\x01\x1f\x7f", "\x01\x08\x0c\x1b", "\x01\x1f\x7f", "\x01\x08\x0c\x1b"},
		{"unicode", "hôte-€-😀", "ß😀", "hôte-€-😀", "ß😀"},
		{"html and separators", "<a>&\u2028\u2029", "</script>", "<a>&\u2028\u2029", "</script>"},
		{"invalid utf-8", "a\xffb", "\xff\xfe\xc3(", "a\ufffdb", "\ufffd\ufffd\ufffd("},
		{"truncated rune", "\xe2\x82", "ab\xf0\x9f\x98", "\ufffd\ufffd", "ab\ufffd\ufffd\ufffd"},
		{"surrogate half", "\xed\xa0\x80", "\xed\xbf\xbf", "\ufffd\ufffd\ufffd", "\ufffd\ufffd\ufffd"},
		{"encoded U+FFFD kept", "\uFFFD", "\uFFFD", "\uFFFD", "\uFFFD"},
		{"empty host", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := event.NewEncoder(tt.host)
			r := procRecord(cnmsg.ProcEvent{What: cnmsg.ProcComm, PID: 1, TGID: 1, Comm: comm(tt.comm)})
			line := enc.AppendJSON(nil, &r)
			got := decodeLine(t, line)
			if got["host"] != tt.wantHost {
				t.Errorf("host = %q, want %q", got["host"], tt.wantHost)
			}
			proc, _ := got["proc"].(map[string]any)
			if proc["comm"] != tt.wantComm {
				t.Errorf("comm = %q, want %q", proc["comm"], tt.wantComm)
			}
			// Control bytes never appear raw inside the line.
			for i, c := range line[:len(line)-1] {
				if c < 0x20 {
					t.Errorf("raw control byte %#x at %d in %q", c, i, line)
				}
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"abc", `"abc"`},
		{`"\`, `"\"\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"\xff", `"\ufffd"`},
		{"é", `"é"`},
	}
	for _, tt := range tests {
		got := string(event.AppendString([]byte("prefix:"), tt.in))
		if want := "prefix:" + tt.want; got != want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, want)
		}
	}
}

var timeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$`)

func TestAppendJSONTime(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"nanoseconds", time.Unix(0, testTime), testTimeText},
		{"whole second keeps 9 digits", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05.000000000Z"},
		{"non-UTC zone written as UTC", time.Date(2024, 1, 2, 3, 4, 5, 100, time.FixedZone("X", 5*3600)), "2024-01-01T22:04:05.000000100Z"},
		{"epoch", time.Unix(0, 0), "1970-01-01T00:00:00.000000000Z"},
		{"before epoch", time.Unix(0, -1), "1969-12-31T23:59:59.999999999Z"},
	}
	enc := event.NewEncoder("h")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := event.Record{Time: tt.t.UnixNano(), Msg: cnmsg.Message{ID: procID}}
			got := decodeLine(t, enc.AppendJSON(nil, &r))["time"].(string)
			if got != tt.want {
				t.Errorf("time = %q, want %q", got, tt.want)
			}
			if !timeRE.MatchString(got) {
				t.Errorf("time %q is not RFC 3339 with 9 fractional digits in UTC", got)
			}
			back, err := time.Parse(time.RFC3339Nano, got)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(tt.t) {
				t.Errorf("time %q parses to %v, want %v", got, back, tt.t)
			}
		})
	}
}

func TestAppendJSONAppends(t *testing.T) {
	enc := event.NewEncoder("h")
	r1 := procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1, TGID: 1})
	r2 := event.Record{Kind: event.KindLoss, Time: testTime, Msg: cnmsg.Message{ID: procID}, Loss: event.Loss{Lost: 1}}
	buf := []byte("existing\n")
	buf = enc.AppendJSON(buf, &r1)
	buf = enc.AppendJSON(buf, &r2)
	lines := bytes.SplitAfter(buf, []byte("\n"))
	if len(lines) != 4 || len(lines[3]) != 0 {
		t.Fatalf("got %d pieces, want 3 lines: %q", len(lines), buf)
	}
	if string(lines[0]) != "existing\n" {
		t.Errorf("AppendJSON changed what dst held: %q", lines[0])
	}
	for _, l := range lines[1:3] {
		decodeLine(t, l)
	}
	// The key order is part of the output contract.
	if !bytes.HasPrefix(lines[1], []byte(`{"time":"`+testTimeText+`","host":"h","idx":1,"val":1,"seq":42,`)) {
		t.Errorf("line does not start with time, host, idx, val, seq: %q", lines[1])
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	enc := event.NewEncoder(`host "with" escapes`)
	data := bytes.Repeat([]byte{0xab}, 512)
	records := []event.Record{
		procRecord(cnmsg.ProcEvent{What: cnmsg.ProcComm, PID: 1, TGID: 1, Comm: comm("a\"b\xff\x01")}),
		procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 1, TGID: 1, ExitCode: 256, HasParent: true}),
		{Time: testTime, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 12, Val: 3}, Len: 512, Data: data}},
		{Kind: event.KindLoss, Time: testTime, Msg: cnmsg.Message{ID: procID}, Loss: event.Loss{HasCPU: true, Lost: 3}},
	}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = buf[:0]
		for i := range records {
			buf = enc.AppendJSON(buf, &records[i])
		}
	})
	if allocs != 0 {
		t.Errorf("AppendJSON allocates %v times per run into a preallocated buffer, want 0", allocs)
	}
}

// TestAppendJSONLineage: a parent and ancestors that have exited are
// written as the table remembers them, with "exited": true; live ones
// without the key.
func TestAppendJSONLineage(t *testing.T) {
	init := &proc.Process{EntityID: "b:1:1", PID: 1, TGID: 1, Exe: "/sbin/init"}
	parent := &proc.Process{EntityID: "b:100:7", PID: 100, TGID: 100, PPID: 1, Exe: "/bin/sh", Cmdline: []string{"sh"}, Exited: true, ExitNs: 5}
	r := procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 101, TGID: 101})
	r.Enrich = event.EnrichDone
	r.Enriched = &event.Enrichment{
		Process:   &proc.Process{EntityID: "b:101:8", PID: 101, TGID: 101, PPID: 100, Exe: "/bin/true"},
		Parent:    parent,
		Ancestors: []*proc.Process{parent, init},
	}
	got := decodeLine(t, event.NewEncoder("h").AppendJSON(nil, &r))
	want := map[string]any{"entity_id": "b:100:7", "pid": n(100), "exe": "/bin/sh", "cmdline": []any{"sh"}, "exited": true}
	if diff := cmp.Diff(want, got["parent"]); diff != "" {
		t.Errorf("parent (-want +got):\n%s", diff)
	}
	wantA := []any{
		map[string]any{"entity_id": "b:100:7", "pid": n(100), "exe": "/bin/sh", "exited": true},
		map[string]any{"entity_id": "b:1:1", "pid": n(1), "exe": "/sbin/init"},
	}
	if diff := cmp.Diff(wantA, got["ancestors"]); diff != "" {
		t.Errorf("ancestors (-want +got):\n%s", diff)
	}
	if _, ok := got["process"].(map[string]any)["exited"]; ok {
		t.Error("process has an exited key")
	}
}
