package event_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// fieldsCases are records of every kind and event type, enriched in every
// way the encoder knows, with strings that need escaping or replacing.
func fieldsCases() map[string]*event.Record {
	cases := map[string]*event.Record{}
	for _, c := range textCases {
		if c.record != nil {
			cases["text: "+c.name] = c.record
		}
	}
	proc := &proctable.Process{EntityID: "b:4711:9", PID: 4711, TGID: 4711, PPID: 100, StartTime: testTime,
		Exe: "/usr/bin/grep", Cmdline: []string{"grep", "-r", "nee\xffdle", "a\"b"}, CmdlineTruncated: true, Cwd: "/srv",
		UID: 0, EUID: 0, GID: 5, EGID: 5, User: "root", Comm: "gr\xed\xa0\x80ep", Cgroup: "/kubepods/pod1/abc",
		ContainerID: "abc", PodUID: "pod-1", PreviousExe: "/usr/bin/bash", Stale: true, Seeded: true,
		Missing: []string{proctable.FieldCwd}, Late: []string{proctable.FieldCwd, proctable.FieldCgroup}}
	parent := &proctable.Process{EntityID: "b:100:1", PID: 100, TGID: 100, Exe: "/usr/bin/bash", Cmdline: []string{"bash"}}
	grand := &proctable.Process{EntityID: "b:1:0", PID: 1, TGID: 1, Exe: "/sbin/init"}
	enriched := func(ev cnmsg.ProcEvent, en *event.Enrichment) *event.Record {
		r := procRecord(ev)
		r.Enrich, r.Enriched = event.EnrichDone, en
		return &r
	}
	exec := cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4711, TGID: 4711}
	cases["exec with parent and ancestors"] = enriched(exec,
		&event.Enrichment{Process: proc, Parent: parent, Ancestors: []*proctable.Process{parent, grand}})
	cases["exec, no cmdline"] = enriched(exec, &event.Enrichment{Process: &proctable.Process{PID: 4711, TGID: 4711}})
	cases["exit with duration"] = enriched(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 34, ExitSignal: 17},
		&event.Enrichment{Process: proc, Parent: parent, DurationNs: -5, HasDuration: true})
	cases["exit by signal 40"] = enriched(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4711, TGID: 4711, ExitCode: 40},
		&event.Enrichment{Process: proc})
	exited := &proctable.Process{EntityID: "b:100:1", PID: 100, TGID: 100, Exe: "/usr/bin/bash", Cmdline: []string{"bash"}, Exited: true, ExitNs: 9}
	cases["exec with an exited parent and ancestor"] = enriched(exec,
		&event.Enrichment{Process: proc, Parent: exited, Ancestors: []*proctable.Process{exited, grand}})
	cases["exit of a thread, exit_signal -1"] = enriched(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 4712, TGID: 4711, ExitSignal: 1<<32 - 1},
		&event.Enrichment{Process: proc})
	cases["gone"] = enriched(exec, &event.Enrichment{Gone: true, PID: 4711})
	cases["gone without pid"] = enriched(exec, &event.Enrichment{Gone: true})
	for _, st := range []event.EnrichState{event.EnrichPending, event.EnrichSkipped, event.EnrichTable, event.EnrichNone} {
		r := procRecord(exec)
		r.Enrich = st
		cases["state "+string(rune('0'+st))] = &r
	}
	cases["exit_lost with duration"] = &event.Record{Kind: event.KindExitLost, Time: testTime,
		Enriched: &event.Enrichment{Process: proc, DurationNs: 7, HasDuration: true}}
	cases["exit_lost empty"] = &event.Record{Kind: event.KindExitLost, Time: testTime}
	cases["gap"] = &event.Record{Kind: event.KindGap, Time: testTime, Gap: &event.Gap{From: testTime - 5e9, To: testTime, PIDsAllocated: 12, PIDsWrapped: true}}
	cases["gap clean"] = &event.Record{Kind: event.KindGap, Time: testTime, Gap: &event.Gap{From: 1, To: 2, CleanStop: true}}
	cases["loss with cpu"] = &event.Record{Kind: event.KindLoss, Time: testTime, Sender: 9, Msg: cnmsg.Message{ID: procID},
		Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 5, ToSeq: 9, Lost: 5}}
	cases["data, empty"] = &event.Record{Time: testTime, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 7, Val: 1}}}
	return cases
}

// TestFieldsMatchLine holds the field model to the JSON line: for every
// case, Fields gives what parsing the line gives, and the model marshals
// back to the same members with the same values: no member of the line is
// missing from the model, and none is present in one and not the other.
func TestFieldsMatchLine(t *testing.T) {
	for _, host := range []string{"web-42", "bad\xffhost"} {
		enc := event.NewEncoder(host)
		for name, r := range fieldsCases() {
			t.Run(name, func(t *testing.T) {
				checkFields(t, enc, r)
			})
		}
	}
}

func checkFields(t *testing.T, enc *event.Encoder, r *event.Record) {
	t.Helper()
	line := enc.AppendJSON(nil, r)
	parsed, err := fields.ParseStrict(line)
	if err != nil {
		t.Fatalf("the model does not read the line %s: %v", line, err)
	}
	var got fields.Record
	enc.Fields(r, &got)
	if diff := cmp.Diff(parsed, &got); diff != "" {
		t.Fatalf("Fields differs from the parsed line %s (-line +Fields):\n%s", line, diff)
	}
	back, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decodeAny(t, line), decodeAny(t, back)); diff != "" {
		t.Fatalf("the model marshals to other members than the line (-line +model):\n%s", diff)
	}
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// FuzzFieldsMatchLine is TestFieldsMatchLine over arbitrary events,
// strings and enrichment.
func FuzzFieldsMatchLine(f *testing.F) {
	f.Add("web-42", []byte("bash"), uint32(cnmsg.ProcComm), uint32(256), "/bin/sh", "-c", uint8(3))
	f.Add("h\xff", []byte("\xff\xfe\x01\n"), uint32(cnmsg.ProcExit), uint32(0x8b), "", "", uint8(0xff))
	f.Add("", []byte{}, uint32(cnmsg.ProcFork), uint32(40), "\xed\xa0\x80", "\u2028", uint8(0x10))
	f.Fuzz(func(t *testing.T, host string, comm []byte, what, code uint32, exe, arg string, flags uint8) {
		ev := cnmsg.ProcEvent{What: cnmsg.What(what), PID: 7, TGID: 7 + uint32(flags&1), ChildPID: code, ChildTGID: 3,
			ExitCode: code, ExitSignal: code>>3 | -(code & 1 << 31 >> 31), HasParent: flags&2 != 0, ParentPID: 1, ParentTGID: 1, TimestampNs: uint64(code) << 20}
		copy(ev.Comm[:], comm)
		r := procRecord(ev)
		if flags&4 != 0 {
			p := &proctable.Process{EntityID: exe, PID: 7, TGID: 7, Exe: exe, Cmdline: []string{exe, arg}, Comm: string(comm),
				User: arg, ContainerID: arg, Stale: flags&8 != 0, CmdlineTruncated: flags&16 != 0, PreviousExe: arg,
				Missing: []string{arg}[:flags>>7], Late: []string{exe}[:flags>>7]}
			en := &event.Enrichment{Process: p, HasDuration: flags&32 != 0, DurationNs: int64(code) - 9}
			if flags&64 != 0 {
				pa := *p
				pa.Exited = flags&1 != 0
				en.Parent, en.Ancestors = &pa, []*proctable.Process{&pa, p}
			}
			r.Enrich, r.Enriched = event.EnrichDone, en
		}
		checkFields(t, event.NewEncoder(host), &r)
	})
}

// TestFieldsAllocs: building the model shares the record's strings; it
// allocates for the time and the few lists the line needs.
func TestFieldsAllocs(t *testing.T) {
	enc := event.NewEncoder("h")
	r := validExec()
	var dst fields.Record
	// The receive time, the start time and the ancestors list.
	n := testing.AllocsPerRun(100, func() { enc.Fields(r, &dst) })
	if n > 3 {
		t.Errorf("Fields allocates %v times per record, want at most 3", n)
	}
}

// validExec is an enriched exec whose strings are all valid UTF-8.
func validExec() *event.Record {
	parent := &proctable.Process{EntityID: "b:100:1", PID: 100, TGID: 100, Exe: "/usr/bin/bash", Cmdline: []string{"bash"}}
	r := procRecord(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4711, TGID: 4711})
	r.Enrich, r.Enriched = event.EnrichDone, &event.Enrichment{Parent: parent, Ancestors: []*proctable.Process{parent},
		Process: &proctable.Process{EntityID: "b:4711:9", PID: 4711, TGID: 4711, PPID: 100, StartTime: testTime,
			Exe: "/usr/bin/grep", Cmdline: []string{"grep", "-r", "needle"}, Cwd: "/srv", User: "root", Comm: "grep"}}
	return &r
}

func BenchmarkFields(b *testing.B) {
	enc := event.NewEncoder("h")
	r := validExec()
	var dst fields.Record
	b.ReportAllocs()
	for b.Loop() {
		enc.Fields(r, &dst)
	}
}

// TestTableRow: a row of the process table describes the process, its
// parent and ancestors exactly as an enriched event does (an exec's
// previous_exe aside: it belongs to the exec), and is a line of the
// output contract.
func TestTableRow(t *testing.T) {
	enc := event.NewEncoder("web-42")
	for name, r := range fieldsCases() {
		en := r.Enriched
		if r.Enrich != event.EnrichDone || en == nil || en.Process == nil || en.HasDuration {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var row, ev fields.Record
			enc.TableRow(event.FormatTime(r.Time), en.Process, en.Parent, en.Ancestors, &row)
			enc.Fields(r, &ev)
			ev.Process.V.PreviousExe = fields.Opt[string]{}
			want := fields.Record{Time: ev.Time, Host: ev.Host, Process: ev.Process, Parent: ev.Parent, Ancestors: ev.Ancestors}
			if diff := cmp.Diff(&want, &row); diff != "" {
				t.Errorf("row differs from the event's description (-event +row):\n%s", diff)
			}
			b, err := json.Marshal(&row)
			if err != nil {
				t.Fatal(err)
			}
			back, err := fields.ParseStrict(b)
			if err != nil {
				t.Fatalf("row %s: %v", b, err)
			}
			if diff := cmp.Diff(&row, back); diff != "" {
				t.Errorf("row %s does not read back (-row +read):\n%s", b, diff)
			}
		})
	}
}
