package query

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/natstest"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// BenchmarkFanout asks N simulated hosts at once through one server: N
// query services in this process, each with its own connection and a
// table of 200 processes, and one asker that waits until every host has
// answered (--expect naming all of them). ns/op is the time until the
// last answer; answer-bytes/op what came back; cpu-ms/op the CPU of the
// whole process (server, responders and asker) per question.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint("hosts=", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	srv := natstest.Run(b)
	url := srv.ClientURL()
	tb := proctable.New(proctable.Options{BootID: "b"})
	tb.Seed(&proctable.Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init", Cmdline: []string{"init"}})
	for pid := uint32(2); pid <= 200; pid++ {
		tb.Seed(&proctable.Observed{PID: pid, PPID: 1, StartTicks: uint64(pid), Exe: "/usr/bin/worker",
			Cmdline: []string{"worker", "--id", fmt.Sprint(pid)}, User: "app"})
	}
	snap := func(context.Context) (*proctable.Snapshot, string, error) { return tb.Snapshot(), "", nil }
	compile, err := WhereCompiler()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var hosts []string
	done := make(chan struct{}, n)
	for i := range n {
		host := fmt.Sprintf("sim-%04d", i)
		hosts = append(hosts, host)
		r := NewResponder(ResponderConfig{Host: host, Version: "1.0.0", Snapshot: snap, Compile: compile, MaxRows: 1000, MaxPerSecond: 1 << 20})
		s, err := NewService(Config{NATS: sinks.NATSConnection{URL: url}}, r, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		go func() { s.Run(ctx); done <- struct{}{} }()
	}
	b.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
	k := &Asker{NC: connect(b, url)}
	waitServices(b, k.NC, n)
	for _, q := range []struct {
		name string
		op   string
		req  Request
	}{
		{"info", OpInfo, Request{}},
		{"ps-where-1-row", OpPS, Request{Where: `process.cmdline.exists(a, a == "42")`}},
		{"ps-10-rows", OpPS, Request{MaxRows: 10}},
	} {
		b.Run(q.name, func(b *testing.B) {
			bytes := 0
			cpu0 := cpuTime()
			for b.Loop() {
				res, err := k.Ask(context.Background(), Question{Op: q.op, Req: q.req, Expect: hosts, Timeout: 30 * time.Second}, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Answers) != n || len(res.Silent) != 0 {
					b.Fatalf("%d answers, %d silent", len(res.Answers), len(res.Silent))
				}
				for _, a := range res.Answers {
					if a.Error != "" {
						b.Fatalf("%s: %s", a.Host, a.Error)
					}
				}
				bytes += res.Bytes
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "answer-bytes/op")
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is this process's CPU time (user and system) in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
