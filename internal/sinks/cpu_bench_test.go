package sinks

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// cpuTime returns the CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSinkCPU compares the CPU a sink costs per message, file against
// core NATS, in one run: process events written in batches of 8 with a
// Flush after each (as the runner does when its queue runs empty), then
// Close. The metric is the process's CPU time per message (cpu-ns/msg).
// Set CNBRIDGED_BENCH_NATS_URL to a nats-server in another process to keep
// the server's own CPU out of the NATS figure; otherwise an embedded server
// is started and its CPU is included.
func BenchmarkSinkCPU(b *testing.B) {
	url := os.Getenv("CNBRIDGED_BENCH_NATS_URL")
	if url == "" {
		url = natstest.Run(b).ClientURL()
		b.Log("embedded nats-server: its CPU is in the core NATS figure")
	}
	rec := procRecord(1, 0, cnmsg.ProcExec, 4242)
	run := func(b *testing.B, s Sink) {
		b.ReportAllocs()
		ctx := context.Background()
		b.ResetTimer()
		start := cpuTime(b)
		for i := range b.N {
			rec.Msg.Seq = uint32(i)
			if err := s.Write(&rec); err != nil {
				b.Fatal(err)
			}
			if i%8 == 7 {
				s.Flush(ctx)
			}
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/msg")
	}
	b.Run("file", func(b *testing.B) {
		_, c := testCounters()
		s, err := NewFile(FileConfig{Path: filepath.Join(b.TempDir(), "out.jsonl")}, event.NewEncoder("h1"), c, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
	b.Run("nats-core", func(b *testing.B) {
		_, c := testCounters()
		s := newSink(b, baseConfig(url), c, zap.NewNop())
		cntest.WaitFor(b, 5*time.Second, "ready", func() bool { return s.Ready() == nil })
		run(b, s)
		if got := readCounts(c).sent; got != float64(b.N) {
			b.Errorf("sent %v, want %d", got, b.N)
		}
	})
}
