package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

const groupEnrichGone = 28

// cgroup2Mount finds where cgroup v2 is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid system).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skip("no /proc/self/mountinfo")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// … mount-point … - fstype source opts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4]
			}
		}
	}
	t.Skip("cgroup v2 is not mounted")
	return ""
}

// TestEnrichExecInCgroup: a child started in a new cgroup gets an exec
// event enriched with its exe, cmdline, uid, cgroup path and parent.
func TestEnrichExecInCgroup(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	mnt := cgroup2Mount(t)
	name := fmt.Sprintf("cnbridged-test-%d", os.Getpid())
	cg := filepath.Join(mnt, name)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	defer os.Remove(cg)
	fd, err := syscall.Open(cg, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    events: [exec, exit]
    enrich: true
    sinks: [out]`, ""))
	cmd := exec.Command("/bin/sh", "-c", "exec sleep 0.2")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := float64(cmd.Process.Pid)
	sleep, _ := filepath.EvalSymlinks("/bin/sleep")
	out := filepath.Join(p.dir, "out/events.jsonl")
	var exec_, exit *line
	cntest.WaitFor(t, 10*time.Second, "the enriched exec and exit of the child", func() bool {
		exec_, exit = nil, nil
		for _, l := range readLines(t, out) {
			if l.Proc == nil || l.Proc["pid"] != pid {
				continue
			}
			switch {
			case l.Proc["event"] == "exec" && l.Process != nil && l.Process["exe"] == sleep:
				exec_ = &l
			case l.Proc["event"] == "exit":
				exit = &l
			}
		}
		return exec_ != nil && exit != nil
	})
	pr := exec_.Process
	if got := fmt.Sprint(pr["cmdline"]); got != "[sleep 0.2]" {
		t.Errorf("cmdline got %s, want [sleep 0.2]", got)
	}
	if pr["uid"] != 0.0 || pr["gid"] != 0.0 {
		t.Errorf("uid/gid got %v/%v, want 0/0", pr["uid"], pr["gid"])
	}
	if pr["cgroup"] != "/"+name {
		t.Errorf("cgroup got %v, want /%s", pr["cgroup"], name)
	}
	if pr["ppid"] != float64(os.Getpid()) {
		t.Errorf("ppid got %v, want %d (the test)", pr["ppid"], os.Getpid())
	}
	if pr["comm"] != "sleep" {
		t.Errorf("comm got %v, want sleep", pr["comm"])
	}
	// The exit is enriched from what exec saw, and decoded for people.
	if exit.Process == nil || exit.Process["gone"] == true && exit.Process["comm"] == nil {
		t.Errorf("exit not enriched from the cache: %s", exit.raw)
	}
	if exit.Proc["exit_status"] != 0.0 {
		t.Errorf("exit_status got %v, want 0: %s", exit.Proc["exit_status"], exit.raw)
	}
	p.stop()
}

// TestEnrichGone: an event for a process that has already gone is marked
// gone, not an error. The forged exec comes from a trusted userspace id on a
// private group, so the pid is known to be dead.
func TestEnrichGone(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", groupEnrichGone, "]"), `  - match: "1.1"
    enrich: true
    sinks: [out]`, `  userspace_senders: ["1.1"]`))
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	em := newEmitter(t)
	pid := uint32(dead.Process.Pid)
	em.send(groupEnrichGone, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 1},
		cnmsg.AppendProc(nil, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}))
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 10*time.Second, "the event", func() bool { return len(readLines(t, out)) == 1 })
	l := readLines(t, out)[0]
	if l.Process == nil || l.Process["gone"] != true {
		t.Errorf("got %s, want process gone", l.raw)
	}
	if got := p.metric("cnbridged_enrich_total", map[string]string{"result": "gone"}); got != 1 {
		t.Errorf("enrich_total{gone} got %v, want 1", got)
	}
	p.stop()
}

// TestKernelFilterExecOnly: with listener.proc_events [exec] the kernel
// sends this socket no fork or exit events at all, and exactly one exec per
// child of a storm.
func TestKernelFilterExecOnly(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	p := startDaemon(t, fileConfig("[1]", `  - match: "1.1"
    sinks: [out]`, `  proc_events: [exec]`))
	before := map[string]float64{}
	for _, ev := range []string{"fork", "exit", "none"} {
		before[ev] = p.metric("cnbridged_proc_events_received_total", map[string]string{"event": ev})
	}
	const n = 200
	pids := map[float64]bool{}
	for i := 0; i < n; i++ {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		pids[float64(c.Process.Pid)] = true
	}
	out := filepath.Join(p.dir, "out/events.jsonl")
	count := func() int {
		k := 0
		for _, l := range readLines(t, out) {
			if l.Proc != nil && l.Proc["event"] == "exec" && pids[l.Proc["pid"].(float64)] {
				k++
			}
		}
		return k
	}
	cntest.WaitFor(t, 20*time.Second, "an exec per child", func() bool { return count() >= n })
	if got := count(); got != n {
		t.Errorf("exec events of the children: got %d, want %d", got, n)
	}
	for _, ev := range []string{"fork", "exit", "none"} {
		if got := p.metric("cnbridged_proc_events_received_total", map[string]string{"event": ev}) - before[ev]; got != 0 {
			t.Errorf("%s events received at the socket during the storm: got %v, want 0", ev, got)
		}
	}
	if got := p.metric("cnbridged_messages_lost_total", map[string]string{"idx": "1", "val": "1"}); got != 0 {
		t.Errorf("lost_total{1.1} got %v with a kernel filter, want 0 (gaps are not loss then)", got)
	}
	p.stop()
}

// TestReloadProcFilter: changing listener.proc_events on reload re-sends
// the kernel filter on the live socket: exits start to arrive, and the
// socket is never re-subscribed (no new acknowledgement, no gap).
func TestReloadProcFilter(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	cfg := func(events string) string {
		return strings.ReplaceAll(fileConfig("[1]", `  - match: "1.1"
    sinks: [out]`, "  proc_events: "+events), "%DIR%", dir)
	}
	p := startBinary(t, daemonBinary(t), dir, cfg("[exec]"))
	exits := func() float64 {
		return p.metric("cnbridged_proc_events_received_total", map[string]string{"event": "exit"})
	}
	acks := p.metric("cnbridged_proc_events_received_total", map[string]string{"event": "none"})
	before := exits()
	exec.Command("/bin/true").Run()
	// Its exit, had the kernel sent one, was queued on the socket before
	// the parent saw it end, so before a second child's exec: once that
	// exec is in the file, the first exit would have been counted.
	marker := exec.Command("/bin/true")
	marker.Run()
	mpid := float64(marker.Process.Pid)
	cntest.WaitFor(t, 10*time.Second, "the marker child's exec", func() bool {
		for _, l := range readLines(t, filepath.Join(p.dir, "out/events.jsonl")) {
			if l.Proc != nil && l.Proc["event"] == "exec" && l.Proc["pid"] == mpid {
				return true
			}
		}
		return false
	})
	if got := exits() - before; got != 0 {
		t.Fatalf("exit events with proc_events [exec]: %v", got)
	}
	writeAtomic(t, p.config, cfg("[exec, exit]"))
	cntest.WaitFor(t, 10*time.Second, "the reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	c := exec.Command("/bin/true")
	c.Run()
	pid := float64(c.Process.Pid)
	out := filepath.Join(p.dir, "out/events.jsonl")
	cntest.WaitFor(t, 10*time.Second, "the child's exit", func() bool {
		for _, l := range readLines(t, out) {
			if l.Proc != nil && l.Proc["event"] == "exit" && l.Proc["pid"] == pid {
				return true
			}
		}
		return false
	})
	if got := p.metric("cnbridged_proc_events_received_total", map[string]string{"event": "none"}); got != acks {
		t.Errorf("acknowledgements went from %v to %v: the reload re-subscribed instead of re-filtering", acks, got)
	}
	p.stop()
}
