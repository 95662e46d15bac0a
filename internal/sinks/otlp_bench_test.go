package sinks

import (
	"testing"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
)

// BenchmarkOTLPFill is the otlp sink's per-record cost before export:
// the field model, attributes and the body as a pdata map, into a batch
// (BenchmarkAppendJSON in internal/event is the native line's alone).
func BenchmarkOTLPFill(b *testing.B) {
	recs := otlpRecords()
	s := &OTLP{cfg: OTLPConfig{Host: "h", BatchSize: 512}, log: zap.NewNop(), names: map[string]string{}, keys: map[string]string{}}
	s.enc = newEncoderForBench()
	s.body = newBodyEncoder(s.enc, Body{})
	b.ReportAllocs()
	batch := s.newBatch()
	for b.Loop() {
		if batch.recs.Len() >= 512 {
			batch = s.newBatch()
		}
		s.fill(batch.recs.AppendEmpty(), &recs[0])
	}
}

func newEncoderForBench() *event.Encoder { return event.NewEncoder("h") }
