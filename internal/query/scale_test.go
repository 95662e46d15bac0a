package query

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	snap := tableSnap(tb) // shared by the responders: one snapshot, read only
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

// BenchmarkInventory reads an inventory of 10 000 hosts' heartbeats, as
// every fleet question does first.
func BenchmarkInventory(b *testing.B) {
	srv := natstest.Run(b, natstest.JetStream(b.TempDir()))
	nc := connect(b, srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultBucket, TTL: time.Hour, Storage: jetstream.MemoryStorage})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	for i := range n {
		host := fmt.Sprintf("host-%05d.example.com", i)
		v, _ := json.Marshal(Heartbeat{Host: host, Version: "1.2.3", ServiceID: "0123456789abcdefghijkl", Time: time.Now().UTC().Format(time.RFC3339)})
		if _, err := kv.Put(ctx, KVKey(host), v); err != nil {
			b.Fatal(err)
		}
	}
	k := &Asker{NC: nc, Bucket: DefaultBucket}
	for b.Loop() {
		hosts, err := k.Inventory(ctx)
		if err != nil || len(hosts) != n {
			b.Fatalf("%d hosts, %v", len(hosts), err)
		}
	}
}

// BenchmarkGather is the asker's side of a question to 10 000 hosts: one
// subscriber on the fan-out subject answers it 10 000 times, as 10 000
// hosts would (info-sized answers, about 330 bytes each), and the asker
// waits for all of them. What it measures is the server's and the asker's
// cost of the answers, without the hosts' work.
func BenchmarkGather(b *testing.B) {
	const n = 10_000
	srv := natstest.Run(b)
	fleet := connect(b, srv.ClientURL())
	var hosts []string
	var answers [][]byte
	for i := range n {
		h := fmt.Sprintf("host-%05d", i)
		hosts = append(hosts, h)
		a, _ := json.Marshal(&Answer{Host: h, Version: "1.2.3", Time: "2026-12-07T01:00:00.000000000Z",
			Table: &TableState{State: "ok", Processes: 312}, Info: &Info{Version: "1.2.3", Processes: 312, Threads: 40, MaxEntries: 65536, Seeded: 300, Observed: 12}})
		answers = append(answers, a)
	}
	if _, err := fleet.Subscribe(AllSubject(OpInfo), func(m *nats.Msg) {
		for _, a := range answers {
			fleet.Publish(m.Reply, a)
		}
	}); err != nil {
		b.Fatal(err)
	}
	fleet.Flush()
	k := &Asker{NC: connect(b, srv.ClientURL())}
	bytes := 0
	for b.Loop() {
		res, err := k.Ask(context.Background(), Question{Op: OpInfo, Expect: hosts, Timeout: 30 * time.Second}, nil)
		if err != nil || len(res.Answers) != n {
			b.Fatalf("%d answers (%v)", len(res.Answers), err)
		}
		bytes = res.Bytes
	}
	b.ReportMetric(float64(bytes), "answer-bytes/op")
}
