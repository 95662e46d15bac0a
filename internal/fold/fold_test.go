package fold_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/fold"
)

// ev is an enriched record of pid's event at second sec.
func ev(event string, pid int64, sec int, exe string, args ...string) *fields.Record {
	p := fields.Proc{Event: event, PID: fields.Some(pid), TGID: fields.Some(pid)}
	if event == "fork" {
		p = fields.Proc{Event: event, ParentPID: fields.Some(int64(1)), ParentTGID: fields.Some(int64(1)), ChildPID: fields.Some(pid), ChildTGID: fields.Some(pid)}
	}
	return &fields.Record{Time: at(sec), Host: "h", Idx: fields.Some[int64](1), Val: fields.Some[int64](1), Proc: fields.Some(p),
		Process: fields.Some(fields.Process{EntityID: fields.Some("e:" + strconv.FormatInt(pid, 10)), PID: fields.Some(pid),
			Exe: fields.Some(exe), Cmdline: fields.Some(args), StartTime: fields.Some(at(0))}),
		Parent: fields.Some(fields.Parent{EntityID: fields.Some("e:1"), PID: fields.Some[int64](1), Exe: fields.Some("/sbin/init")})}
}

func at(sec int) string { return fmt.Sprintf("2026-12-06T10:00:%02d.000000000Z", sec) }

func exit(pid int64, sec int, exe string, status int64, durationNs int64) *fields.Record {
	r := ev("exit", pid, sec, exe)
	r.Proc.V.ExitCode, r.Proc.V.ExitStatus = fields.Some(status<<8), fields.Some(status)
	if durationNs > 0 {
		r.Process.V.DurationNs = fields.Some(durationNs)
	}
	return r
}

// TestLifecycle: sh -c 'exec sleep 0.2' is fork, exec sh, exec sleep and
// exit: none passes, and the exit emits one life with both images.
func TestLifecycle(t *testing.T) {
	f := fold.New()
	var out []fields.Record
	for _, r := range []*fields.Record{
		ev("fork", 50, 0, "/usr/bin/bash", "bash"),
		ev("exec", 50, 1, "/usr/bin/sh", "sh", "-c", "exec sleep 0.2"),
		ev("exec", 50, 2, "/usr/bin/sleep", "sleep", "0.2"),
		exit(50, 3, "/usr/bin/sleep", 0, 2_500_000_000),
	} {
		folded, emit := f.Add(r)
		if !folded {
			t.Errorf("%s passed through", r.Proc.V.Event)
		}
		out = append(out, emit...)
	}
	if len(out) != 1 {
		t.Fatalf("emitted %d records, want one life", len(out))
	}
	got := out[0]
	want := fields.Life{Start: fields.Some(at(0)), End: fields.Some(at(3)), DurationNs: fields.Some[int64](2_500_000_000), Forked: true,
		Execs: []fields.Image{{Time: at(1), Exe: "/usr/bin/sh", Cmdline: []string{"sh", "-c", "exec sleep 0.2"}},
			{Time: at(2), Exe: "/usr/bin/sleep", Cmdline: []string{"sleep", "0.2"}}},
		Events: 4, ExitCode: fields.Some[int64](0), ExitStatus: fields.Some[int64](0)}
	if diff := cmp.Diff(want, got.Life.V); diff != "" {
		t.Errorf("life (-want +got):\n%s", diff)
	}
	if got.Type.V != fields.TypeLife || got.Time != at(3) || got.Host != "h" || got.Process.V.Exe.V != "/usr/bin/sleep" ||
		got.Parent.V.Exe.V != "/sbin/init" || got.Process.V.DurationNs.Set || got.Proc.Set {
		t.Errorf("life record %+v: want type life at the exit, the process at its exit without duration_ns, the parent, no proc", got)
	}
	if f.Open() != 0 || f.Folded != 4 || f.Emitted != 1 {
		t.Errorf("open %d, folded %d, emitted %d; want 0, 4, 1", f.Open(), f.Folded, f.Emitted)
	}
}

// TestPassThrough: markers, records without enrichment and a thread exit
// of an unknown process pass through; threads of a known life are
// counted in it.
func TestPassThrough(t *testing.T) {
	f := fold.New()
	plain := ev("exec", 7, 0, "/x")
	plain.Process = fields.Opt[fields.Process]{}
	gone := ev("exec", 8, 0, "/x")
	gone.Process = fields.Some(fields.Process{Gone: fields.Some(true)})
	threadExit := exit(9, 0, "/x", 0, 0)
	threadExit.Proc.V.Thread = fields.Some(true)
	for name, r := range map[string]*fields.Record{
		"loss":                      {Type: fields.Some(fields.TypeLoss)},
		"not enriched":              plain,
		"gone":                      gone,
		"thread exit of an unknown": threadExit,
		"data":                      {Data: fields.Some("AA==")},
	} {
		if folded, emit := f.Add(r); folded || len(emit) != 0 {
			t.Errorf("%s: folded %v, emitted %d; want it passed through", name, folded, len(emit))
		}
	}
	f.Add(ev("fork", 9, 0, "/x"))
	threadFork := ev("fork", 9, 1, "/x")
	threadFork.Proc.V.Thread = fields.Some(true)
	if folded, _ := f.Add(threadFork); !folded {
		t.Error("a thread fork of a known life passed through")
	}
	if folded, _ := f.Add(threadExit); !folded {
		t.Error("a thread exit of a known life passed through")
	}
	_, emit := f.Add(exit(9, 2, "/x", 1, 0))
	if len(emit) != 1 || emit[0].Life.V.Events != 4 || emit[0].Life.V.ExitStatus.V != 1 || emit[0].Life.V.DurationNs.V != 2e9 {
		t.Errorf("emitted %+v, want one life of 4 events, exit status 1, duration from start to end (2 s)", emit)
	}
}

// TestExitLostEndsLife: an exit_lost passes through and ends the life it
// names, marked.
func TestExitLostEndsLife(t *testing.T) {
	f := fold.New()
	f.Add(ev("exec", 5, 0, "/x"))
	lost := &fields.Record{Time: at(4), Type: fields.Some(fields.TypeExitLost), Process: fields.Some(fields.Process{EntityID: fields.Some("e:5")})}
	folded, emit := f.Add(lost)
	if folded || len(emit) != 1 || !emit[0].Life.V.ExitLost.V || emit[0].Life.V.End.V != at(4) || f.Open() != 0 {
		t.Errorf("folded %v, emitted %+v; want the exit_lost passed and the life ended, marked exit_lost", folded, emit)
	}
}

// TestFlushAndEviction: lives beyond the bound evict the oldest, marked
// open and evicted; Flush emits the rest, open, oldest first.
func TestFlushAndEviction(t *testing.T) {
	f := fold.NewBounded(2)
	f.Add(ev("fork", 1, 0, "/a"))
	f.Add(ev("fork", 2, 0, "/b"))
	_, emit := f.Add(ev("fork", 3, 0, "/c"))
	if len(emit) != 1 || emit[0].Process.V.Exe.V != "/a" || !emit[0].Life.V.Open.V || !emit[0].Life.V.Evicted.V {
		t.Fatalf("emitted %+v, want /a's life, open and evicted", emit)
	}
	f.Add(exit(2, 1, "/b", 0, 0))
	f.Add(ev("fork", 4, 0, "/d"))
	out := f.Flush(1_800_000_000 * 1e9)
	var exes []string
	for _, r := range out {
		if !r.Life.V.Open.V || r.Life.V.Evicted.Set || r.Life.V.End.Set {
			t.Errorf("flushed %+v: want open, not evicted, no end", r.Life.V)
		}
		exes = append(exes, r.Process.V.Exe.V)
	}
	if diff := cmp.Diff([]string{"/c", "/d"}, exes); diff != "" {
		t.Errorf("flushed lives (-want +got):\n%s", diff)
	}
	if f.Open() != 0 {
		t.Errorf("%d lives open after Flush", f.Open())
	}
}

// TestExecsBounded: a life keeps MaxExecs images and counts the rest.
func TestExecsBounded(t *testing.T) {
	f := fold.New()
	for i := range fold.MaxExecs + 4 {
		f.Add(ev("exec", 5, i%50, "/x"+strconv.Itoa(i)))
	}
	_, emit := f.Add(exit(5, 0, "/x", 0, 0))
	if len(emit) != 1 || len(emit[0].Life.V.Execs) != fold.MaxExecs || emit[0].Life.V.ExecsDropped.V != 4 {
		t.Errorf("emitted %+v, want %d images and 4 dropped", emit, fold.MaxExecs)
	}
}

// FuzzFold: every record is folded or passed through; the records
// folded are the events of the lives emitted and still open; the lives
// and their order stay bounded.
func FuzzFold(f *testing.F) {
	f.Add([]byte{0x01, 0x11, 0x21, 0x31, 0x02, 0x42, 0x03, 0xff})
	f.Add([]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x29, 0x59})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const bound = 4
		fo := fold.NewBounded(bound)
		var events int64
		emitted := func(rs []fields.Record) {
			for _, r := range rs {
				if r.Type.V != fields.TypeLife {
					t.Fatalf("emitted a %q record", r.Type.V)
				}
				events += r.Life.V.Events
			}
		}
		for i, op := range ops {
			pid := int64(op & 7)
			var r *fields.Record
			switch op >> 4 & 7 {
			case 0:
				r = ev("fork", pid, i%50, "/f")
			case 1, 2:
				r = ev("exec", pid, i%50, "/e")
			case 3:
				r = exit(pid, i%50, "/e", int64(op>>7), 0)
			case 4:
				r = ev("fork", pid, i%50, "/t")
				r.Proc.V.Thread = fields.Some(true)
			case 5:
				r = exit(pid, i%50, "/t", 0, 0)
				r.Proc.V.Thread = fields.Some(true)
			case 6:
				r = &fields.Record{Type: fields.Some(fields.TypeExitLost), Process: fields.Some(fields.Process{EntityID: fields.Some("e:" + strconv.FormatInt(pid, 10))})}
			case 7:
				emitted(fo.Flush(int64(i)))
				continue
			}
			_, emit := fo.Add(r)
			emitted(emit)
			if fo.Open() > bound || fo.OrderLen() > 2*fo.Open()+65 {
				t.Fatalf("open %d, order %d: over the bound", fo.Open(), fo.OrderLen())
			}
		}
		emitted(fo.Flush(0))
		if uint64(events) != fo.Folded {
			t.Fatalf("lives hold %d events, %d were folded", events, fo.Folded)
		}
	})
}
