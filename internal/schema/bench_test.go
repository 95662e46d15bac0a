package schema_test

import (
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/schema"
)

// benchRecords are routed records as a sink gets them: an enriched exec
// and exit, a plain fork, a loss marker.
func benchRecords() []struct {
	name string
	r    *event.Record
} {
	now := time.Now().UnixNano()
	proc := &proctable.Process{EntityID: "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1780:142175", PID: 1780, TGID: 1780, PPID: 1779,
		StartTime: now - 3e6, Exe: "/usr/bin/sleep", Cmdline: []string{"sleep", "0.3"}, Cwd: "/tmp", User: "root", Comm: "sleep",
		Cgroup: "/system.slice/cron.service"}
	parent := &proctable.Process{EntityID: "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175", PID: 1779, TGID: 1779,
		Exe: "/usr/bin/dash", Cmdline: []string{"sh", "-c", "sleep 0.3; true"}}
	msg := cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 268841, Len: 40}
	exec := &event.Record{Time: now, Msg: msg, HasProc: true,
		Proc:   cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: 1, TimestampNs: 1421763501602, PID: 1780, TGID: 1780},
		Enrich: event.EnrichDone, Enriched: &event.Enrichment{Process: proc, Parent: parent, Ancestors: []*proctable.Process{parent}}}
	exit := &event.Record{Time: now, Msg: msg, HasProc: true,
		Proc:   cnmsg.ProcEvent{What: cnmsg.ProcExit, CPU: 1, TimestampNs: 1421763501602, PID: 1780, TGID: 1780, ExitCode: 256, ExitSignal: 17, ParentPID: 1779, ParentTGID: 1779, HasParent: true},
		Enrich: event.EnrichDone, Enriched: &event.Enrichment{Process: proc, Parent: parent, DurationNs: 300e6, HasDuration: true}}
	fork := &event.Record{Time: now, Msg: msg, HasProc: true,
		Proc: cnmsg.ProcEvent{What: cnmsg.ProcFork, CPU: 1, TimestampNs: 123456789, ParentPID: 1, ParentTGID: 1, ChildPID: 4242, ChildTGID: 4242}}
	loss := &event.Record{Kind: event.KindLoss, Time: now, Msg: msg, Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 10, ToSeq: 19, Lost: 10}}
	return []struct {
		name string
		r    *event.Record
	}{{"exec-enriched", exec}, {"exit-enriched", exit}, {"fork", fork}, {"loss", loss}}
}

// BenchmarkEncode is a sink's per-record encoding cost in each schema:
// native is the line (event.Encoder.AppendJSON); ecs and ocsf build the
// field model (event.Encoder.Fields) and append the schema's document,
// as the sinks do. Compare them within one run (docs/performance.md).
func BenchmarkEncode(b *testing.B) {
	enc := event.NewEncoder("bench-host")
	prod := schema.Product{Version: "1.0.0"}
	for _, c := range benchRecords() {
		b.Run(c.name+"/native", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = enc.AppendJSON(buf[:0], c.r)
			}
			b.ReportMetric(float64(len(buf)), "bytes/record")
		})
		b.Run(c.name+"/ecs", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			var rec fields.Record
			b.ReportAllocs()
			for b.Loop() {
				enc.Fields(c.r, &rec)
				buf = schema.AppendECS(buf[:0], &rec)
			}
			b.ReportMetric(float64(len(buf)), "bytes/record")
		})
		b.Run(c.name+"/ocsf", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			var rec fields.Record
			b.ReportAllocs()
			for b.Loop() {
				enc.Fields(c.r, &rec)
				buf = schema.AppendOCSF(buf[:0], &rec, prod)
			}
			b.ReportMetric(float64(len(buf)), "bytes/record")
		})
	}
}

// BenchmarkAppend is the schema encoders alone, from a built field model.
func BenchmarkAppend(b *testing.B) {
	enc := event.NewEncoder("bench-host")
	for _, c := range benchRecords() {
		var rec fields.Record
		enc.Fields(c.r, &rec)
		b.Run(c.name+"/ecs", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = schema.AppendECS(buf[:0], &rec)
			}
		})
		b.Run(c.name+"/ocsf", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = schema.AppendOCSF(buf[:0], &rec, schema.Product{Version: "1.0.0"})
			}
		})
	}
}

// BenchmarkEncodeRatio interleaves the three encodings of each record in
// blocks of 256, so that a noisy machine weighs on all of them alike, and
// reports each one's ns per record and the schemas' ratios to native
// (ecs/native, ocsf/native) from the same run.
func BenchmarkEncodeRatio(b *testing.B) {
	enc := event.NewEncoder("bench-host")
	prod := schema.Product{Version: "1.0.0"}
	for _, c := range benchRecords() {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			var rec fields.Record
			ways := []func(){
				func() { buf = enc.AppendJSON(buf[:0], c.r) },
				func() { enc.Fields(c.r, &rec); buf = schema.AppendECS(buf[:0], &rec) },
				func() { enc.Fields(c.r, &rec); buf = schema.AppendOCSF(buf[:0], &rec, prod) },
			}
			var spent [3]time.Duration
			const block = 256
			n := 0
			for b.Loop() {
				for i, f := range ways {
					t := time.Now()
					for range block {
						f()
					}
					spent[i] += time.Since(t)
				}
				n += block
			}
			per := func(i int) float64 { return float64(spent[i].Nanoseconds()) / float64(n) }
			b.ReportMetric(per(0), "native-ns/rec")
			b.ReportMetric(per(1), "ecs-ns/rec")
			b.ReportMetric(per(2), "ocsf-ns/rec")
			b.ReportMetric(per(1)/per(0), "ecs/native")
			b.ReportMetric(per(2)/per(0), "ocsf/native")
		})
	}
}
