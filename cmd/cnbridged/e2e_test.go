package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// Each test that multicasts uses its own group and idx (groups are shared
// by every process on the machine, and packages' tests run in parallel).
const (
	groupSynthetic = 21
	groupSpoof     = 22
	groupGaps      = 23
	groupOverrun   = 24
	idxTest        = 0x7e57 // 32343: no kernel user has it
)

func fileConfig(groups string, routes string, extra string) string {
	return fmt.Sprintf(`
listener:
  groups: %s
  receive_buffer_bytes: 33554432
%s
sinks:
  out:
    type: file
    path: %%DIR%%/out/events.jsonl
    queue_size: 262144
routes:
%s
`, groups, extra, routes)
}

// TestRealProcessEvents: the daemon subscribed to group 1 sees the exec and
// exit of a child the test starts, with the child's pid, in the file sink.
func TestRealProcessEvents(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [fork, exec, exit]
    sinks: [out]`, ""))
	cmd := exec.Command("/bin/sh", "-c", "exec /bin/sleep 0.05")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := float64(cmd.Process.Pid)
	out := filepath.Join(p.dir, "out/events.jsonl")
	var exec_, exit, fork bool
	cntest.WaitFor(t, 10*time.Second, "exec and exit of the child in the file sink", func() bool {
		exec_, exit, fork = false, false, false
		for _, l := range readLines(t, out) {
			if l.Idx != 1 || l.Val != 1 || l.Sender != 0 || l.Proc == nil {
				continue
			}
			switch l.Proc["event"] {
			case "exec":
				exec_ = exec_ || l.Proc["pid"] == pid
			case "exit":
				exit = exit || (l.Proc["pid"] == pid && l.Proc["exit_code"] == 0.0)
			case "fork":
				fork = fork || l.Proc["child_pid"] == pid
			case "none":
				t.Errorf("route with events [fork exec exit] let an ack through: %s", l.raw)
			}
		}
		return exec_ && exit && fork
	})
	p.stop()
	if got := p.stderr.String(); !bytes.Contains([]byte(got), []byte("subscribed to process events")) {
		t.Errorf("log does not mention the subscription:\n%s", got)
	}
}

// TestSynthetic10k: 10 000 messages multicast to a test group reach the
// file sink in order, with byte-exact payloads.
func TestSynthetic10k(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const n = 10000
	id := fmt.Sprintf("%d.%d", idxTest, groupSynthetic)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupSynthetic, "]"),
		`  - match: "`+id+`"
    sinks: [out]`,
		`  userspace_senders: ["`+id+`"]`))
	em := newEmitter(t)
	payload := func(i int) []byte {
		b := make([]byte, 8+i%97)
		binary.LittleEndian.PutUint64(b, uint64(i))
		for j := 8; j < len(b); j++ {
			b[j] = byte(i + j)
		}
		return b
	}
	for i := 0; i < n; i++ {
		em.send(groupSynthetic, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupSynthetic}, Seq: uint32(i), Ack: 7}, payload(i))
		if i%500 == 499 {
			time.Sleep(time.Millisecond) // stay below the socket's buffer
		}
	}
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 20*time.Second, fmt.Sprintf("%d lines", n), func() bool { return len(readLines(t, out)) >= n })
	if got := p.metric("cnbridged_messages_lost_total", map[string]string{"idx": fmt.Sprint(idxTest)}); got != 0 {
		t.Errorf("lost_total got %v, want 0", got)
	}
	p.stop()
	lines := readLines(t, out)
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l.Seq != uint32(i) || l.Idx != idxTest || l.Val != groupSynthetic || l.Ack != 7 || l.Sender == 0 {
			t.Fatalf("line %d: got %s, want seq %d of %s", i, l.raw, i, id)
		}
		if want := payload(i); !bytes.Equal(l.Data, want) || int(l.Len) != len(want) {
			t.Fatalf("line %d: payload got %x (len %d), want %x", i, l.Data, l.Len, want)
		}
	}
}

// TestSpoofRejected: forged process events with nlmsg_pid 0, multicast by a
// userspace socket (port id ≠ 0), reach no sink and are counted.
func TestSpoofRejected(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	marker := fmt.Sprintf("%d.%d", idxTest, groupSpoof)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupSpoof, "]"),
		`  - match: "*"
    sinks: [out]`,
		`  userspace_senders: ["`+marker+`"]`))
	em := newEmitter(t)
	const forged = 50
	for i := 0; i < forged; i++ {
		ev := cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 4242, TGID: 4242})
		em.send(groupSpoof, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: uint32(i)}, ev)
	}
	// A trusted marker after the forgeries: once it is in the file, every
	// forgery before it has been handled.
	em.send(groupSpoof, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupSpoof}, Seq: 1}, []byte("marker"))
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 10*time.Second, "the marker", func() bool { return len(readLines(t, out)) >= 1 })
	if got := p.metric("cnbridged_messages_rejected_total", map[string]string{"reason": "untrusted_sender"}); got != forged {
		t.Errorf("rejected{untrusted_sender} got %v, want %d", got, forged)
	}
	p.stop()
	for _, l := range readLines(t, out) {
		if l.Idx == 1 {
			t.Errorf("a forged process event reached the sink: %s", l.raw)
		}
	}
}

// TestValidateExitCodes: validate exits 0 on a good config and 78 with
// every problem listed on a bad one.
func TestValidateExitCodes(t *testing.T) {
	bin := daemonBinary(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
sinks:
  out: {type: stdout}
routes:
  - {match: "1.1", sinks: [out]}
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`
listener:
  groups: [0, 40]
  bogus_key: 1
sinks:
  out: {type: file}
routes:
  - {match: "x", sinks: [nope]}
`), 0o600)
	if out, err := exec.Command(bin, "validate", "--config", good).CombinedOutput(); err != nil {
		t.Fatalf("validate good: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "validate", "--config", bad).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 78 {
		t.Fatalf("validate bad: got %v, want exit 78\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("bogus_key")) {
		t.Errorf("unknown key not reported:\n%s", out)
	}
	// Without the unknown key, every other problem is listed at once.
	os.WriteFile(bad, bytes.Replace(mustRead(t, bad), []byte("  bogus_key: 1\n"), nil, 1), 0o600)
	out, _ = exec.Command(bin, "validate", "--config", bad).CombinedOutput()
	for _, want := range []string{"listener.groups[0]", "listener.groups[1]", "sinks.out.path", "routes[0].match", "routes[0].sinks[0]"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("validate output does not name %s:\n%s", want, out)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMalformedCounted: malformed datagrams (cn_msg.len beyond the message,
// a short cn_msg, a wrong nlmsg_len) are counted by reason and lose nothing
// else: the good message after them still arrives.
func TestMalformedCounted(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const group = 16
	id := fmt.Sprintf("%d.%d", idxTest, group)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", group, "]"), `  - match: "`+id+`"
    sinks: [out]`, `  userspace_senders: ["`+id+`"]`))
	em := newEmitter(t)
	good := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: group}, Seq: 1}, []byte("good"))
	lenOverflow := bytes.Clone(good)
	binary.NativeEndian.PutUint16(lenOverflow[16+16:], 999) // cn_msg.len
	shortHeader := bytes.Clone(good[:16+10])
	binary.NativeEndian.PutUint32(shortHeader[0:], uint32(len(shortHeader)))
	badNlLen := bytes.Clone(good)
	binary.NativeEndian.PutUint32(badNlLen[0:], 4096) // nlmsg_len beyond the datagram
	for _, dg := range [][]byte{lenOverflow, shortHeader, badNlLen, good} {
		if err := em.e.Emit(dg, group); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 10*time.Second, "the good message", func() bool { return len(readLines(t, out)) == 1 })
	for reason, want := range map[string]float64{"cn_len_overflow": 1, "short_cn_msg": 1, "bad_nlmsg_len": 1} {
		if got := p.metric("cnbridged_decode_errors_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("decode_errors_total{%s} got %v, want %v", reason, got, want)
		}
	}
	if got := p.metric("cnbridged_messages_rejected_total", map[string]string{"reason": "malformed"}); got != 3 {
		t.Errorf("rejected{malformed} got %v, want 3", got)
	}
	p.stop()
}
