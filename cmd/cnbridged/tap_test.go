package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// Connector groups of the tap tests (see e2e_test.go for the others).
const (
	groupTap     = 13
	groupTapSlow = 14
	groupTapNATS = 15
)

// tapConfig routes synthetic process events (id 1.1, multicast by the
// test on group) to a file sink.
func tapConfig(group int) string {
	return fileConfig(fmt.Sprint("[", group, "]"), `  - match: "1.1"
    sinks: [out]`, `  userspace_senders: ["1.1"]`)
}

// runTap runs "cnbridged tap" with args until the test ends.
func runTap(t *testing.T, args ...string) *cntest.SyncBuffer {
	t.Helper()
	out := &cntest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cmd := newTapCmd()
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(out)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tap %v: %v", args, err)
		}
	})
	return out
}

func procEvent(e cnmsg.ProcEvent) []byte { return cnmsg.AppendProc(nil, e) }

// TestTapLocal: "cnbridged tap" on the daemon's socket shows the routed
// events as columns and as JSON, filtered by pid and event.
func TestTapLocal(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, tapConfig(groupTap))
	sock := filepath.Join(p.dir, "tap.sock")
	const pid = 4_000_013 // above pid_max: no real process
	human := runTap(t, "--socket", sock, "--pid", fmt.Sprint(pid))
	asJSON := runTap(t, "--socket", sock, "--json", "--event", "exit")
	selected := runTap(t, "--socket", sock, "--json", "--where", fmt.Sprintf(`proc.event == "exec" && proc.pid == %d`, pid+1))
	cntest.WaitFor(t, 10*time.Second, "three tap clients", func() bool { return p.metric("cnbridged_tap_clients", nil) == 3 })

	em := newEmitter(t)
	id := cnmsg.ID{Idx: 1, Val: 1}
	em.send(groupTap, cnmsg.Header{ID: id, Seq: 0}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 77, ParentTGID: 77, ChildPID: pid, ChildTGID: pid}))
	em.send(groupTap, cnmsg.Header{ID: id, Seq: 1}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}))
	em.send(groupTap, cnmsg.Header{ID: id, Seq: 2}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid + 1, TGID: pid + 1}))
	em.send(groupTap, cnmsg.Header{ID: id, Seq: 3}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid, ExitCode: 3 << 8}))

	cntest.WaitFor(t, 10*time.Second, "three rows", func() bool { return strings.Count(human.String(), "\n") >= 4 })
	rows := strings.Split(strings.TrimSpace(human.String()), "\n")
	wantCols := [][]string{
		{"TIME", "HOST", "EVENT", "PID", "PPID", "USER", "EXIT", "DURATION", "PROCESS"},
		{"fork", fmt.Sprint(pid), "77", "-"},
		{"exec", fmt.Sprint(pid), "-", "-"},
		{"exit", fmt.Sprint(pid), "0", "-", "3"}, // the datagram's parent_tgid, as the text format shows it
	}
	if len(rows) != len(wantCols) {
		t.Fatalf("got rows:\n%s\nwant %d", human.String(), len(wantCols))
	}
	for i, want := range wantCols {
		f := strings.Fields(rows[i])
		if i > 0 {
			f = f[2:] // time, host
		}
		if strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("row %d: got %q, want fields %q", i, rows[i], want)
		}
	}
	cntest.WaitFor(t, 10*time.Second, "one JSON line", func() bool { return strings.Contains(asJSON.String(), "\n") })
	var l struct {
		Proc struct {
			Event      string `json:"event"`
			PID        int    `json:"pid"`
			ExitStatus int    `json:"exit_status"`
		} `json:"proc"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(asJSON.String())), &l); err != nil {
		t.Fatalf("JSON output %q: %v", asJSON.String(), err)
	}
	if l.Proc.Event != "exit" || l.Proc.PID != pid || l.Proc.ExitStatus != 3 {
		t.Errorf("JSON output %s, want the exit of %d with status 3", asJSON.String(), pid)
	}
	cntest.WaitFor(t, 10*time.Second, "one line --where selected", func() bool { return strings.Contains(selected.String(), "\n") })
	if got := strings.TrimSpace(selected.String()); strings.Count(got, "\n") != 0 || !strings.Contains(got, fmt.Sprintf(`"event":"exec","cpu":0,"timestamp_ns":0,"pid":%d,`, pid+1)) {
		t.Errorf("tap --where: got\n%s\nwant the exec of %d alone", got, pid+1)
	}
}

// TestTapSlowReaderDoesNotSlowDaemon: a tap client that never reads does
// not cost the file sink one event; its lines are dropped and counted.
func TestTapSlowReaderDoesNotSlowDaemon(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const n = 20000
	p := startDaemon(t, tapConfig(groupTapSlow), "--set", "tap.client_buffer=16")
	conn, err := net.Dial("unix", filepath.Join(p.dir, "tap.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.UnixConn).SetReadBuffer(4096)
	cntest.WaitFor(t, 10*time.Second, "the tap client", func() bool { return p.metric("cnbridged_tap_clients", nil) == 1 })
	em := newEmitter(t)
	for i := range n {
		em.send(groupTapSlow, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: uint32(i)},
			procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: uint32(5_000_000 + i), TGID: uint32(5_000_000 + i)}))
		if i%500 == 499 {
			time.Sleep(time.Millisecond) // stay below the socket's buffer
		}
	}
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d lines in the file", n), func() bool { return len(readLines(t, out)) >= n })
	if got := p.metric("cnbridged_messages_lost_total", nil); got != 0 {
		t.Errorf("lost_total = %v, want 0", got)
	}
	if got := p.metric("cnbridged_sink_dropped_total", map[string]string{"sink": "out"}); got != 0 {
		t.Errorf("file sink dropped %v, want 0", got)
	}
	tapDropped := p.metric("cnbridged_tap_dropped_total", nil)
	queueDropped := p.metric("cnbridged_tap_queue_dropped_total", nil)
	if tapDropped+queueDropped == 0 {
		t.Errorf("nothing dropped for a client that never read (tap %v, tap queue %v)", tapDropped, queueDropped)
	}
	t.Logf("file sink: %d lines; the idle tap client: %v dropped by its buffer, %v by the tap's queue", n, tapDropped, queueDropped)
}

// TestTapUnderRealTree: --under NAME shows a real process and what it runs
// (through the process table's parent and ancestors), not its siblings.
func TestTapUnderRealTree(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [fork, exec, exit]
    enrich: true
    ancestors: 4
    sinks: [out]`, ""))
	shell := filepath.Join(t.TempDir(), "fleet-under-sh")
	src, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shell, src, 0o755); err != nil {
		t.Fatal(err)
	}
	out := runTap(t, "--socket", filepath.Join(p.dir, "tap.sock"), "--json", "--event", "exec", "--under", "fleet-under-*")
	cntest.WaitFor(t, 10*time.Second, "the tap client", func() bool { return p.metric("cnbridged_tap_clients", nil) == 1 })
	if err := exec.Command("/bin/true", "sibling-marker").Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shell, "-c", "/bin/true one; /bin/true two; /bin/true three")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	type shown struct {
		Process struct {
			PID     int      `json:"pid"`
			Exe     string   `json:"exe"`
			Cmdline []string `json:"cmdline"`
		} `json:"process"`
		Parent struct {
			Exe string `json:"exe"`
		} `json:"parent"`
	}
	// The children may be gone before the daemon reads their /proc (no exe
	// or cmdline then), but the process table still knows their parent.
	var children []shown
	cntest.WaitFor(t, 10*time.Second, "the shell's three children", func() bool {
		children = nil
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var s shown
			if json.Unmarshal([]byte(l), &s) == nil && s.Process.PID != cmd.Process.Pid {
				children = append(children, s)
			}
		}
		return len(children) >= 3
	})
	// The sibling ran first: had --under let it through, it would be here.
	if len(children) != 3 {
		t.Errorf("--under showed %d processes besides the shell, want its 3 children: %+v", len(children), children)
	}
	for _, c := range children {
		if c.Parent.Exe != shell {
			t.Errorf("shown: %+v, want a child of %s", c, shell)
		}
	}
}

// TestTapFromNATS: the daemon publishes to a JetStream stream with the
// fleet subjects; "cnbridged tap" reads it from NATS: the stream from
// --since, filtered server-side by subject and by the tap's own filters,
// and live from a core subscription.
func TestTapFromNATS(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	ns := natstest.Run(t, natstest.JetStream(t.TempDir()))
	p := startDaemon(t, fmt.Sprintf(`
host: tap-nats
listener:
  groups: [%d]
  userspace_senders: ["1.1"]
sinks:
  bus:
    type: nats
    url: %s
    subject: cn.{host}.proc.{event}.{container}
    jetstream: true
    stream: {name: CN, subjects: ["cn.>"], storage: memory}
routes:
  - match: "1.1"
    sinks: [bus]
`, groupTapNATS, ns.ClientURL()))
	const pid = 4_000_015
	em := newEmitter(t)
	id := cnmsg.ID{Idx: 1, Val: 1}
	em.send(groupTapNATS, cnmsg.Header{ID: id, Seq: 0}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}))
	em.send(groupTapNATS, cnmsg.Header{ID: id, Seq: 1}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid}))
	em.send(groupTapNATS, cnmsg.Header{ID: id, Seq: 2}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid + 1, TGID: pid + 1}))
	cntest.WaitFor(t, 10*time.Second, "three messages in the stream", func() bool {
		return p.metric("cnbridged_sink_messages_total", map[string]string{"sink": "bus", "result": "sent"}) == 3
	})

	// The stream from 10 minutes ago, exits only (server-side), pid filter.
	stream := runTap(t, "--nats", ns.ClientURL(), "--stream", "CN", "--since", "10m",
		"--subject", "cn.tap-nats.proc.exit.>", "--pid", fmt.Sprint(pid+1))
	cntest.WaitFor(t, 10*time.Second, "the header and one row", func() bool { return strings.Count(stream.String(), "\n") >= 2 })
	rows := strings.Split(strings.TrimSpace(stream.String()), "\n")
	if f := strings.Fields(rows[len(rows)-1]); len(rows) != 2 || len(f) < 4 || f[1] != "tap-nats" || f[2] != "exit" || f[3] != fmt.Sprint(pid+1) {
		t.Errorf("tap --stream --since: got\n%s\nwant the header and the exit of %d", stream.String(), pid+1)
	}
	// From a sequence: the last two messages, as JSON.
	fromSeq := runTap(t, "--nats", ns.ClientURL(), "--stream", "CN", "--since-seq", "2", "--json")
	cntest.WaitFor(t, 10*time.Second, "two JSON lines", func() bool { return strings.Count(fromSeq.String(), "\n") >= 2 })
	if got := strings.Count(fromSeq.String(), `"event":"exit"`); got != 2 || strings.Contains(fromSeq.String(), `"event":"exec"`) {
		t.Errorf("tap --since-seq 2: got\n%s\nwant the two exits", fromSeq.String())
	}
	// Core NATS: live only.
	live := runTap(t, "--nats", ns.ClientURL(), "--subject", "cn.*.proc.exec.>", "--json")
	// Send until the subscription is in place and a line comes through.
	deadline := time.Now().Add(10 * time.Second)
	for seq := uint32(3); !strings.Contains(live.String(), `"event":"exec"`); seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("tap --subject got nothing live:\n%s", live.String())
		}
		em.send(groupTapNATS, cnmsg.Header{ID: id, Seq: seq}, procEvent(cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid + 2, TGID: pid + 2}))
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(live.String(), `"event":"exit"`) {
		t.Errorf("tap --subject cn.*.proc.exec.> showed an exit:\n%s", live.String())
	}
	// --where over NATS: the same language as on the socket.
	selected := runTap(t, "--nats", ns.ClientURL(), "--stream", "CN", "--since", "10m", "--json",
		"--where", fmt.Sprintf(`proc.event == "exit" && proc.pid != %d`, pid))
	cntest.WaitFor(t, 10*time.Second, "one line --where selected", func() bool { return strings.Contains(selected.String(), "\n") })
	if got := strings.TrimSpace(selected.String()); strings.Count(got, "\n") != 0 || !strings.Contains(got, fmt.Sprintf(`"pid":%d,`, pid+1)) {
		t.Errorf("tap --stream --where: got\n%s\nwant the exit of %d alone", got, pid+1)
	}
}

// TestTapUsageErrors: bad flags are usage errors (exit 2) naming the flag.
func TestTapUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"tap", "--pid", "99999999999"}, "--pid 99999999999: not a pid"},
		{[]string{"tap", "--exe", "[x"}, `--exe "[x": bad glob`},
		{[]string{"tap", "--since", "1m"}, "need --nats"},
		{[]string{"tap", "--nats", "nats://127.0.0.1:1", "--since", "1m"}, "need --stream"},
		{[]string{"tap", "--where", `proc.event == "exec" && process.exee == ""`}, "--where: column 32: undefined field 'exee'"},
	} {
		var out strings.Builder
		if code := run(tt.args, &out, &out); code != 2 || !strings.Contains(out.String(), tt.want) {
			t.Errorf("%v: exit %d, output %q; want 2 and %q", tt.args, code, out.String(), tt.want)
		}
	}
}
