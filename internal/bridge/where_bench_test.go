package bridge_test

import (
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/where"
)

// whereExample is the three-clause expression of issue 22.
const whereExample = `proc.event == "exec" && process.exe.endsWith("/curl") && has(process.container_id)`

// BenchmarkWhere is a route's where per record: the field model built
// from an enriched exec (event.Encoder.Fields) and the three-clause
// expression evaluated over it. Run it beside BenchmarkHandle
// (-bench 'Handle$|Where') for the ratio to the reader's per-message
// cost.
func BenchmarkWhere(b *testing.B) {
	x, err := where.Compile(whereExample)
	if err != nil {
		b.Fatal(err)
	}
	enc := event.NewEncoder("bench-host")
	parent := &proctable.Process{EntityID: "b:100:1", PID: 100, TGID: 100, Exe: "/usr/bin/bash", Cmdline: []string{"bash"}}
	r := event.Record{Time: time.Now().UnixNano(), HasProc: true, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}},
		Proc:   cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4711, TGID: 4711},
		Enrich: event.EnrichDone,
		Enriched: &event.Enrichment{Parent: parent, Process: &proctable.Process{EntityID: "b:4711:9", PID: 4711, TGID: 4711, PPID: 100,
			StartTime: time.Now().UnixNano(), Exe: "/usr/bin/curl", Cmdline: []string{"curl", "-s", "https://example.org"}, Cwd: "/srv",
			User: "root", Comm: "curl", ContainerID: "0123456789ab"}}}
	var f fields.Record
	b.Run("fields+eval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc.Fields(&r, &f)
			if ok, err := x.Eval(&f); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("eval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := x.Eval(&f); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
