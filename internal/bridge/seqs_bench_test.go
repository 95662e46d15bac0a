package bridge_test

import (
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/statefile"
)

// BenchmarkHandleProcSeqTable is BenchmarkHandleProc without and with the
// restart trace's seq table (statefile.Seqs, a shared mapping updated per
// kernel message), side by side: the cost of an exact restart gap.
func BenchmarkHandleProcSeqTable(b *testing.B) {
	for _, withTable := range []bool{false, true} {
		name := "without"
		if withTable {
			name = "with_seq_table"
		}
		b.Run(name, func(b *testing.B) {
			rg := newRig(b, sinks.Block, true)
			if withTable {
				s, _, _, err := statefile.OpenSeqs(b.TempDir(), "0f8c5a4e-4a3b-4f3e-9c1d-2b7e8f9a0b1c")
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				rg.b.RecordSeqs(s)
			}
			dgs := procDatagrams(64)
			seq := uint32(0)
			b.ReportAllocs()
			b.ResetTimer()
			now := time.Now()
			for i := 0; i < b.N; i += len(dgs) {
				seq = renumber(dgs, seq)
				rg.b.Handle(dgs, now)
			}
			b.StopTimer()
			rg.b.RecordSeqs(nil)
		})
	}
}
