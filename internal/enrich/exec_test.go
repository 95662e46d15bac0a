package enrich

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// TestExecFromCapture: the enricher describes an exec from what the
// reader captured and reads only what the capture left (its Late), then
// marks that late; what neither read could see is missing, the cgroup
// staying as the table had it and comm left empty (not the inherited
// name). The fake /proc holds pid 1 (init,
// /bin/true); pid 7 is known to the table but gone from /proc.
func TestExecFromCapture(t *testing.T) {
	all := []string{"cmdline", "exe", "cwd", "cgroup", "comm"}
	rest := []string{"cwd", "cgroup", "comm"}
	captured := proctable.Observed{Exe: "/cap", Cmdline: []string{"cap", "x"}, Cwd: "/c", Cgroup: "/cap.slice", Comm: "cap"}
	head := proctable.Observed{Exe: "/cap", Cmdline: []string{"cap", "x"}, Late: rest}
	type want struct {
		Exe     string
		Cmdline []string
		Cwd     string
		Cgroup  string
		Comm    string
		Missing []string
		Late    []string
	}
	tests := []struct {
		name    string
		pid     uint32
		capture *proctable.Observed // nil: none
		behind  bool
		want    want
		result  string
	}{
		{name: "all captured: no read", pid: 1, capture: &captured,
			want: want{Exe: "/cap", Cmdline: []string{"cap", "x"}, Cwd: "/c", Cgroup: "/cap.slice", Comm: "cap"}, result: "read"},
		{name: "cmdline and exe captured, the rest read late", pid: 1, capture: &head,
			want: want{Exe: "/cap", Cmdline: []string{"cap", "x"}, Cgroup: "/", Comm: "init", Late: rest}, result: "read"},
		{name: "cmdline and exe captured, gone before the late read", pid: 7, capture: &head,
			want:   want{Exe: "/cap", Cmdline: []string{"cap", "x"}, Cwd: "", Cgroup: "/old.slice", Comm: "", Missing: rest, Late: rest},
			result: "read"},
		{name: "cmdline and exe captured, enricher behind", pid: 1, capture: &head, behind: true,
			want:   want{Exe: "/cap", Cmdline: []string{"cap", "x"}, Cgroup: "/old.slice", Comm: "", Missing: rest, Late: rest},
			result: "backlog"},
		{name: "nothing captured, read late", pid: 1,
			want: want{Exe: "/bin/true", Cmdline: []string{"init"}, Cgroup: "/", Comm: "init", Late: all}, result: "read"},
		{name: "nothing captured, gone before the late read", pid: 7,
			want:   want{Cwd: "/old", Cgroup: "/old.slice", Comm: "", Missing: []string{"exe", "cmdline", "cwd", "comm"}, Late: all},
			result: "gone"},
		{name: "gone at the capture: not read again", pid: 1, capture: &proctable.Observed{Gone: true, Missing: all},
			want: want{Cwd: "/old", Cgroup: "/old.slice", Comm: "", Missing: []string{"exe", "cmdline", "cwd", "comm"}}, result: "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Options{MaxEntries: 16, NoSeed: true, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
			defer e.reader.Close()
			for _, pid := range []uint32{1, 7} {
				e.table.Seed(&proctable.Observed{PID: pid, StartTicks: 5, Exe: "/old", Cmdline: []string{"old"}, Cwd: "/old",
					Comm: "old", Cgroup: "/old.slice"})
			}
			b := procBatch(event.NewPool(), cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: tt.pid, TGID: tt.pid})
			defer b.Release()
			if tt.capture != nil {
				o := *tt.capture
				o.PID = tt.pid
				b.Records[0].Capture = &event.Capture{Observed: o, At: 1}
			}
			if tt.behind {
				for range cap(e.q)/2 + 1 {
					e.q <- item{b: event.NewPool().Get(), enrich: true}
				}
			}
			enrichNow(e, b)
			r := &b.Records[0]
			if r.Capture != nil {
				t.Error("the record still holds its capture after the enricher")
			}
			if r.Enriched == nil || r.Enriched.Process == nil {
				t.Fatalf("not described: %+v", r.Enriched)
			}
			p := r.Enriched.Process
			got := want{p.Exe, p.Cmdline, p.Cwd, p.Cgroup, p.Comm, p.Missing, p.Late}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("described (-want +got):\n%s", diff)
			}
			if n := testutil.ToFloat64(e.results.WithLabelValues(tt.result)); n != 1 {
				t.Errorf("enrich_total{result=%q} = %v, want 1", tt.result, n)
			}
		})
	}
}

// TestCaptureStale: a captured read is stale only when an exec stamped
// before it ended came later (the capturer's overtaken count rose); a
// later exec of the pid received since, stamped after the read, does not
// make it stale, as it does a read the enricher made late.
func TestCaptureStale(t *testing.T) {
	captured := proctable.Observed{PID: 1, Exe: "/cap", Cmdline: []string{"cap"}, Cgroup: "/", Comm: "cap"}
	tests := []struct {
		name      string
		capture   bool
		overtaken uint32 // the capturer's count when the exec is applied
		want      bool
	}{
		{name: "captured, not overtaken", capture: true, overtaken: 3, want: false},
		{name: "captured, overtaken", capture: true, overtaken: 4, want: true},
		{name: "read late, a later exec received", capture: false, overtaken: 3, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Options{MaxEntries: 16, NoSeed: true, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
			defer e.reader.Close()
			e.overtaken = func(uint32) uint32 { return tt.overtaken }
			e.table.Seed(&proctable.Observed{PID: 1, StartTicks: 5, Exe: "/old", Cmdline: []string{"old"}})
			b := procBatch(event.NewPool(), cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1, TGID: 1})
			defer b.Release()
			if tt.capture {
				b.Records[0].Capture = &event.Capture{Observed: captured, At: 1, Overtaken: 3}
			}
			// The reader received this exec and a later one of pid 1.
			e.noteExec(1)
			e.noteExec(1)
			enrichNow(e, b)
			if got := b.Records[0].Enriched.Process.Stale; got != tt.want {
				t.Errorf("stale %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLateInJSON: the fields read late are listed after "missing".
func TestLateInJSON(t *testing.T) {
	e := New(Options{MaxEntries: 16, NoSeed: true, ProcRoot: fakeProc(t)}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	defer e.reader.Close()
	e.table.Seed(&proctable.Observed{PID: 7, StartTicks: 5, Exe: "/old", Cmdline: []string{"old"}})
	b := procBatch(event.NewPool(), cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 7, TGID: 7})
	defer b.Release()
	b.Records[0].Capture = &event.Capture{Observed: proctable.Observed{PID: 7, Exe: "/cap", Cmdline: []string{"cap"},
		Late: []string{"cwd", "cgroup", "comm"}}, At: 1}
	enrichNow(e, b)
	line := string(event.NewEncoder("h").AppendJSON(nil, &b.Records[0]))
	if want := `"missing":["cwd","cgroup","comm"],"late":["cwd","cgroup","comm"]}`; !strings.Contains(line, want) {
		t.Errorf("line %s lacks %s", line, want)
	}
}
