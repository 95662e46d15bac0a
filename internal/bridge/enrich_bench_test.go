package bridge

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// BenchmarkEnrichment compares, in one run, the cost per process event of
// encoding it as is and of enriching it from /proc first (this process's
// own /proc entry: a live process, read for real). Events/s = 1e9 / ns/op.
func BenchmarkEnrichment(b *testing.B) {
	self := uint32(os.Getpid())
	enc := event.NewEncoder("bench")
	pool := event.NewPool()
	evs := make([]cnmsg.ProcEvent, event.MaxBatchRecords)
	for i := range evs {
		evs[i] = cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self, TGID: self}
	}
	buf := make([]byte, 0, 1<<20)
	run := func(b *testing.B, enrich bool) {
		e := newEnricher(EnrichOptions{MaxEntries: 1024, NoSeed: true}, prometheus.NewRegistry(), zap.NewNop())
		b.ReportAllocs()
		for done := 0; done < b.N; {
			batch := procBatch(pool, evs[:min(len(evs), b.N-done)]...)
			if enrich {
				enrichNow(e, batch)
			} else {
				for i := range batch.Records {
					batch.Records[i].Enrich = event.EnrichNone
				}
			}
			for i := range batch.Records {
				buf = enc.AppendJSON(buf[:0], &batch.Records[i])
			}
			done += len(batch.Records)
			batch.Release()
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, false) })
	b.Run("enriched", func(b *testing.B) { run(b, true) })
}
