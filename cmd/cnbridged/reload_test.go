package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

const (
	groupReload   = 29
	groupReload2  = 30
	groupReloadCM = 31
)

// writeAtomic replaces path the way editors do: write a temp file, rename.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func reloadConfig(group int, sinks map[string]string, routes ...string) string {
	id := fmt.Sprintf("%d.%d", idxTest, group)
	var b strings.Builder
	fmt.Fprintf(&b, "listener:\n  groups: [%d]\n  receive_buffer_bytes: 33554432\n  userspace_senders: [%q]\nsinks:\n", group, id)
	for name, file := range sinks {
		fmt.Fprintf(&b, "  %s:\n    type: file\n    path: %%DIR%%/%s\n", name, file)
	}
	b.WriteString("routes:\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "  - match: %q\n    sinks: [%s]\n", id, r)
	}
	return b.String()
}

// steadySender emits seqs 0..n-1 of idxTest.group at about rate/s.
func steadySender(t *testing.T, group, n, rate int) (wait func()) {
	em := newEmitter(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i := 0; i < n; i++ {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			em.buf = cnmsg.AppendMessage(em.buf[:0], 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: uint32(group)}, Seq: uint32(i)}, []byte("steady"))
			if err := em.e.Emit(em.buf, group); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return wg.Wait
}

func seqs(t *testing.T, path string) []uint32 {
	var out []uint32
	for _, l := range readLines(t, path) {
		if l.Type == "" {
			out = append(out, l.Seq)
		}
	}
	return out
}

// TestReloadUnderLoad: adding a route while messages flow. The new route
// receives from the reload on, without a hole; the old one loses nothing.
// Then an invalid edit leaves the running config in place.
func TestReloadUnderLoad(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	p := startBinary(t, raceBinary(t), dir, reloadConfig(groupReload, map[string]string{"a": "a.jsonl"}, "a"))
	// Messages flow at 3 000/s from before the reload until 1 000 more
	// have gone out after it succeeded, however long it takes: the reload
	// lands mid-stream on a loaded machine too (a fixed 6 000 were all
	// sent before a slow reload once).
	em := newEmitter(t)
	reloaded := make(chan struct{})
	total := make(chan int, 1)
	go func() {
		start, end := time.Now(), -1
		i := 0
		for ; end < 0 || i < end; i++ {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / 3000)); d > 0 {
				time.Sleep(d)
			}
			if end < 0 {
				select {
				case <-reloaded:
					end = i + 1000
				default:
				}
			}
			em.buf = cnmsg.AppendMessage(em.buf[:0], 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupReload}, Seq: uint32(i)}, []byte("steady"))
			if err := em.e.Emit(em.buf, groupReload); err != nil {
				t.Error(err)
				break
			}
		}
		total <- i
	}()
	// Reload once the first thousand messages have arrived.
	cntest.WaitFor(t, 10*time.Second, "the first thousand messages", func() bool {
		return p.metric("cnbridged_messages_received_total", map[string]string{"idx": fmt.Sprint(idxTest), "val": fmt.Sprint(groupReload)}) >= 1000
	})
	writeAtomic(t, p.config, strings.ReplaceAll(
		reloadConfig(groupReload, map[string]string{"a": "a.jsonl", "b": "b.jsonl"}, "a", "b"), "%DIR%", dir))
	cntest.WaitFor(t, 20*time.Second, "a successful reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	close(reloaded)
	n := <-total
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	cntest.WaitFor(t, 10*time.Second, "every message in sink a", func() bool { return len(seqs(t, a)) >= n })

	// An invalid edit: rejected, the old config keeps running.
	bad := strings.ReplaceAll(reloadConfig(groupReload, map[string]string{"a": "a.jsonl"}, "a"), "%DIR%", dir) + "bogus: 1\n"
	writeAtomic(t, p.config, bad)
	cntest.WaitFor(t, 10*time.Second, "a failed reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "failure"}) == 1
	})
	if got := p.metric("cnbridged_config_last_reload_successful", nil); got != 0 {
		t.Errorf("last_reload_successful got %v, want 0", got)
	}
	out, err := exec.Command(p.cmd.Path, "validate", "--config", p.config).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 78 || !strings.Contains(string(out), "bogus") {
		t.Errorf("validate on the rejected file: %v, want exit 78 naming the key\n%s", err, out)
	}
	// Still routing to both sinks.
	em = newEmitter(t)
	em.send(groupReload, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupReload}, Seq: uint32(n)}, []byte("after"))
	cntest.WaitFor(t, 10*time.Second, "the message after the bad edit in both sinks", func() bool {
		return len(seqs(t, a)) == n+1 && len(seqs(t, b)) > 0 && seqs(t, b)[len(seqs(t, b))-1] == uint32(n)
	})
	p.stop()

	gotA := seqs(t, a)
	for i, s := range gotA {
		if s != uint32(i) {
			t.Fatalf("sink a: line %d has seq %d: the old route lost or reordered messages", i, s)
		}
	}
	gotB := seqs(t, b)
	if len(gotB) < 2 || gotB[0] == 0 {
		t.Fatalf("sink b got %d messages starting at %v; want those after the reload", len(gotB), gotB[:min(1, len(gotB))])
	}
	for i := 1; i < len(gotB); i++ {
		if gotB[i] != gotB[i-1]+1 {
			t.Fatalf("sink b: seq %d after %d: a hole after the reload", gotB[i], gotB[i-1])
		}
	}
	t.Logf("sink a %d messages; sink b %d from seq %d", len(gotA), len(gotB), gotB[0])
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		t.Error("race detected")
	}
}

// TestRapidEdits: 50 edits in quick succession, in place and by rename;
// the final content is what runs.
func TestRapidEdits(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	p := startBinary(t, raceBinary(t), dir, reloadConfig(groupReload2, map[string]string{"s0": "s0.jsonl"}, "s0"))
	for i := 1; i <= 50; i++ {
		c := strings.ReplaceAll(reloadConfig(groupReload2, map[string]string{fmt.Sprintf("s%d", i): fmt.Sprintf("s%d.jsonl", i)}, fmt.Sprintf("s%d", i)), "%DIR%", dir)
		if i%2 == 0 {
			writeAtomic(t, p.config, c)
		} else if err := os.WriteFile(p.config, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%7) * 3 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGHUP) // and a SIGHUP on top
	em := newEmitter(t)
	final := filepath.Join(dir, "s50.jsonl")
	seq := uint32(0)
	cntest.WaitFor(t, 20*time.Second, "the final config to route to s50", func() bool {
		em.send(groupReload2, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupReload2}, Seq: seq}, []byte("probe"))
		seq++
		time.Sleep(50 * time.Millisecond)
		return len(seqs(t, final)) > 0
	})
	// A reload still in flight (the watcher's last event, the SIGHUP)
	// loads the same final file: wait until the daemon runs only it.
	running := func() (ok float64, sinkNames []string) {
		for _, m := range p.families()["cnbridged_sink_queue_capacity"].GetMetric() {
			if name := m.GetLabel()[0].GetValue(); !strings.HasPrefix(name, "_") { // not the tap's queue
				sinkNames = append(sinkNames, name)
			}
		}
		return p.metric("cnbridged_config_last_reload_successful", nil), sinkNames
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, sinkNames := running()
		if ok == 1 && len(sinkNames) == 1 && sinkNames[0] == "s50" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after s50 got a message: last_reload_successful %v, running sinks %v; want 1 and [s50]", ok, sinkNames)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop()
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		t.Error("race detected")
	}
}

// TestReloadConfigMapSwap: a Kubernetes ConfigMap volume updates by
// swapping its ..data symlink; the daemon must see it.
func TestReloadConfigMapSwap(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	mount := filepath.Join(dir, "cm")
	os.MkdirAll(filepath.Join(mount, "..v1"), 0o755)
	cfg1 := strings.ReplaceAll(reloadConfig(groupReloadCM, map[string]string{"one": "one.jsonl"}, "one"), "%DIR%", dir)
	os.WriteFile(filepath.Join(mount, "..v1", "cnbridged.yaml"), []byte(cfg1), 0o644)
	os.Symlink("..v1", filepath.Join(mount, "..data"))
	os.Symlink("..data/cnbridged.yaml", filepath.Join(mount, "cnbridged.yaml"))

	p := startOn(t, raceBinary(t), dir, filepath.Join(mount, "cnbridged.yaml"))
	// The kubelet's update: write ..v2, point a new symlink at it, rename
	// it over ..data.
	cfg2 := strings.ReplaceAll(reloadConfig(groupReloadCM, map[string]string{"two": "two.jsonl"}, "two"), "%DIR%", dir)
	os.MkdirAll(filepath.Join(mount, "..v2"), 0o755)
	os.WriteFile(filepath.Join(mount, "..v2", "cnbridged.yaml"), []byte(cfg2), 0o644)
	os.Symlink("..v2", filepath.Join(mount, "..data_tmp"))
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(mount, "..v1"))
	cntest.WaitFor(t, 10*time.Second, "the reload after the symlink swap", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) >= 1
	})
	em := newEmitter(t)
	em.send(groupReloadCM, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupReloadCM}, Seq: 1}, []byte("x"))
	cntest.WaitFor(t, 10*time.Second, "the message in the new sink", func() bool {
		return len(seqs(t, filepath.Join(dir, "two.jsonl"))) == 1
	})
	p.stop()
}
