package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestJetStreamStoresEveryRecord (issue 20 item 3): a daemon with a
// JetStream sink is killed (SIGKILL) and started again three times: the
// stream holds three not_listening gap records, one per restart. In the
// last run, processes whose exits the daemon lost (it was stopped with a
// small socket buffer while they were killed) are reported in exit_lost
// records: the stream holds every one the file sink beside it wrote. Gap
// and exit_lost records all had one Nats-Msg-Id before, and the stream
// kept the first of them only, while the sink counted every one sent.
func TestJetStreamStoresEveryRecord(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	ns := natstest.Run(t, natstest.JetStream(t.TempDir()))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bin := daemonBinary(t)
	dir := t.TempDir() // one state_dir for every run: the restart trace
	config := fmt.Sprintf(`host: jsrec
listener:
  groups: [1]
  receive_buffer_bytes: 65536
sinks:
  js:
    type: nats
    url: %s
    subject: "cnrec.{host}.{event}"
    jetstream: true
    stream: {name: CNREC, subjects: ["cnrec.>"], storage: memory}
    queue_size: 262144
  out:
    type: file
    path: %%DIR%%/out/events.jsonl
    queue_size: 262144
routes:
  - match: "1.1"
    events: [exec, exit]
    enrich: true
    sinks: [js, out]
`, ns.ClientURL())
	ctx := context.Background()
	stored := func(subject string) int {
		st, err := js.Stream(ctx, "CNREC")
		if err != nil {
			return 0
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0
		}
		return int(info.State.Subjects[subject])
	}
	const restarts = 3
	gaps := "cnrec.jsrec.gap"
	p := startBinary(t, bin, dir, config)
	for i := 1; i <= restarts; i++ {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		exec.Command("/bin/true").Run() // something happens while nobody listens
		p = startBinary(t, bin, dir, config)
		cntest.WaitFor(t, 20*time.Second, fmt.Sprintf("gap record %d in the stream", i), func() bool { return stored(gaps) >= i })
	}

	// exit_lost: sleeps the table knows are killed while the daemon is
	// stopped and a burst overflows its socket, as in TestLossResync.
	out := filepath.Join(dir, "out/events.jsonl")
	const n = 6
	sleeps := startSleeps(t, n, out)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	burst := func(k int) {
		for range k {
			exec.Command("/bin/true").Run()
		}
	}
	burst(1000)
	killed := map[float64]bool{}
	for _, c := range sleeps[:n-1] {
		c.Process.Kill()
		c.Wait()
		killed[float64(c.Process.Pid)] = true
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	inFile := func() int {
		k := 0
		for _, l := range readLines(t, out) {
			if l.Type == "exit_lost" {
				k++
			}
		}
		return k
	}
	cntest.WaitFor(t, 30*time.Second, "exit_lost records for the killed sleeps", func() bool {
		burst(20)
		seen := map[float64]bool{}
		for _, l := range readLines(t, out) {
			if l.Type == "exit_lost" && l.Process != nil {
				seen[l.Process["pid"].(float64)] = true
			}
		}
		for pid := range killed {
			if !seen[pid] {
				return false
			}
		}
		return true
	})
	p.stop() // drains: every record written is acknowledged or counted
	lost := inFile()
	if lost < len(killed) {
		t.Fatalf("file sink: %d exit_lost records, want at least the %d killed sleeps", lost, len(killed))
	}
	if got := stored("cnrec.jsrec.exit_lost"); got != lost {
		t.Errorf("stream holds %d exit_lost records, want the %d the file sink wrote", got, lost)
	}
	if got := stored(gaps); got != restarts {
		t.Errorf("stream holds %d gap records, want %d (one per restart)", got, restarts)
	}
	// Each gap record is about its own restart.
	st, err := js.Stream(ctx, "CNREC")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{gaps}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(restarts, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	froms := map[string]bool{}
	for m := range batch.Messages() {
		var g struct{ Type, From, To string }
		if err := json.Unmarshal(m.Data(), &g); err != nil || g.Type != "gap" {
			t.Fatalf("gap message %q: %v", m.Data(), err)
		}
		froms[g.From] = true
	}
	if len(froms) != restarts {
		t.Errorf("gap records name %d distinct times not listened, want %d", len(froms), restarts)
	}
}
