package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The NATS rows: core NATS (a side of the interleaved ladder, counted by
// a subscriber in the harness), and the JetStream sink compared like with
// like with jspub: a raw nats.go async publisher in a process of its own,
// pinned to the daemon's CPU, fed by the same sender through a connector
// socket, publishing a body as long as the sink's JSON line with a unique
// Nats-Msg-Id, at most 4 096 unacknowledged (the sink's max_in_flight),
// into a stream configured as the sink's; the two run the same ladder,
// interleaved rate by rate. The in-process figure earlier versions
// compared with (the publisher inside the harness, beside the server,
// unpinned, with no sender running, 330-byte bodies and no ids) is kept as
// information only (rawNATSInfo).

// jspubTrial runs the raw JetStream publisher (jspub) at one rate.
func (h *harness) jspubTrial(url string, rate float64, delivered func() int64) (trial, error) {
	w, err := startWorker(pinned(h.daemonCPU, h.self, "jspub", "--url", url, "--subject", "cnbenchraw.x")...)
	if err != nil {
		return trial{}, err
	}
	del0 := delivered()
	s, err := h.send(rate)
	var res jspubResult
	if serr := w.stop(&res); err == nil {
		err = serr
	}
	if err != nil {
		return trial{}, err
	}
	t := trial{TargetRate: rate, SendRate: float64(s.Sent) / s.Seconds, Sent: int64(s.Sent),
		Delivered: delivered() - del0, CPUSecs: res.CPUSecs, JSPub: &res}
	t.Lost = t.Sent - t.Delivered
	if t.Delivered > 0 {
		t.CPUPerM = t.CPUSecs / float64(t.Delivered) * 1e6
	}
	return t, nil
}

type stormSide struct {
	Name       string         `json:"name"`
	Skipped    string         `json:"skipped,omitempty"`
	Processes  int            `json:"processes"`
	ProcPerSec float64        `json:"processes_per_second"`
	Events     int64          `json:"events"`
	EventsPerS float64        `json:"events_per_second"`
	Lost       int64          `json:"lost"`
	LostHow    string         `json:"lost_how"`
	CPUSecs    float64        `json:"cpu_seconds,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
}

type stormReport struct {
	Workers int         `json:"workers"`
	Seconds float64     `json:"seconds"`
	Sides   []stormSide `json:"sides"`
}

func (h *harness) runStorm(dur time.Duration, workers int) (stormResult, error) {
	var s stormResult
	err := runJSON(context.Background(), &s, h.self, "storm", "--duration", dur.String(), "--workers", strconv.Itoa(workers))
	return s, err
}

// storm runs the same fork/exec storm (unpinned, every CPU) under the bare
// reader, cnbridged (file sink, every process event) and forkstat in turn.
func (h *harness) storm(_ context.Context, dur time.Duration, workers int) *stormReport {
	rep := &stormReport{Workers: workers, Seconds: dur.Seconds()}

	raw := stormSide{Name: "bare recvmmsg reader", LostHow: "per-CPU seq gaps (SO_MEMINFO drops in detail)"}
	if w, err := startWorker(pinned(h.daemonCPU, h.self, "reader", "--group", "1")...); err != nil {
		raw.Skipped = err.Error()
	} else {
		s, err := h.runStorm(dur, workers)
		var rr readResult
		if serr := w.stop(&rr); err == nil {
			err = serr
		}
		if err != nil {
			raw.Skipped = err.Error()
		} else {
			raw.Processes, raw.ProcPerSec = s.Processes, float64(s.Processes)/s.Seconds
			raw.Events, raw.EventsPerS = int64(rr.Received), float64(rr.Received)/s.Seconds
			raw.Lost, raw.CPUSecs = int64(rr.SeqLost), rr.CPUSecs
			raw.Detail = map[string]any{"socket_drops": rr.Drops, "enobufs": rr.Overruns, "acked": rr.ProcAcked}
		}
	}
	rep.Sides = append(rep.Sides, raw)
	h.logf("storm: bare reader %+v", raw)

	dm := stormSide{Name: "cnbridged (file sink)", LostHow: "cnbridged_messages_lost_total{idx=1,val=1} (per-CPU seq gaps)"}
	path := filepath.Join(h.tmp, "storm.jsonl")
	cfg := fmt.Sprintf(`log: {level: warn, format: json}
listener: {groups: [1], receive_buffer_bytes: %d}
sinks:
  out: {type: file, path: %q}
routes:
  - {match: "1.1", sinks: [out]}
`, 32<<20, path)
	if d, err := h.startDaemon("storm", cfg, nil); err != nil {
		dm.Skipped = err.Error()
	} else {
		c0 := countsOf(d.metrics(), "1", "1")
		cpu0 := cpuSeconds(d.pid)
		s, err := h.runStorm(dur, workers)
		time.Sleep(time.Second)
		c := countsOf(d.metrics(), "1", "1").sub(c0)
		cpu := cpuSeconds(d.pid) - cpu0
		d.stop()
		lines, _ := countLines(path, 0)
		if err != nil {
			dm.Skipped = err.Error()
		} else {
			dm.Processes, dm.ProcPerSec = s.Processes, float64(s.Processes)/s.Seconds
			dm.Events, dm.EventsPerS = int64(c.Received), c.Received/s.Seconds
			dm.Lost, dm.CPUSecs = int64(c.SeqLost), cpu
			dm.Detail = map[string]any{"socket_drops": c.SocketDrops, "socket_overruns": c.Overruns,
				"sink_sent": c.SinkSent, "sink_dropped": c.SinkDropped, "file_lines": lines}
		}
	}
	rep.Sides = append(rep.Sides, dm)
	h.logf("storm: cnbridged %+v", dm)

	rep.Sides = append(rep.Sides, h.forkstat(dur, workers))
	return rep
}

// forkstat runs forkstat -e all under the storm. forkstat has no loss
// counter: it prints one "nobufs" line per ENOBUFS episode. The exact count
// is the kernel's Drops column of /proc/net/netlink for its socket, read
// before it exits.
func (h *harness) forkstat(dur time.Duration, workers int) stormSide {
	side := stormSide{Name: "forkstat -e all", LostHow: "kernel Drops for its socket in /proc/net/netlink (its own output only reports ENOBUFS episodes)"}
	bin, err := exec.LookPath("forkstat")
	if err != nil {
		side.Skipped = "forkstat is not installed (apt-get install forkstat)"
		return side
	}
	outPath := filepath.Join(h.tmp, "forkstat.out")
	out, err := os.Create(outPath)
	if err != nil {
		side.Skipped = err.Error()
		return side
	}
	defer out.Close()
	argv := pinned(h.daemonCPU, bin, "-e", "all")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		side.Skipped = err.Error()
		return side
	}
	time.Sleep(500 * time.Millisecond)
	inode := netlinkInode(cmd.Process.Pid)
	d0, _ := netlinkDrops(inode)
	cpu0 := cpuSeconds(cmd.Process.Pid)
	s, serr := h.runStorm(dur, workers)
	time.Sleep(time.Second)
	d1, ok := netlinkDrops(inode)
	cpu := cpuSeconds(cmd.Process.Pid) - cpu0
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	if serr != nil {
		side.Skipped = serr.Error()
		return side
	}
	events, nobufs := forkstatLines(outPath)
	side.Processes, side.ProcPerSec = s.Processes, float64(s.Processes)/s.Seconds
	side.Events, side.EventsPerS = events, float64(events)/s.Seconds
	side.CPUSecs = cpu
	side.Lost = int64(d1 - d0)
	if !ok {
		side.Lost = -1
		side.LostHow = "unknown: its socket was not found in /proc/net/netlink"
	}
	side.Detail = map[string]any{"nobufs_lines": nobufs, "socket_inode": inode}
	h.logf("storm: forkstat %+v", side)
	return side
}

// netlinkInode finds pid's NETLINK_CONNECTOR socket inode.
func netlinkInode(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	socks := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			socks[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	f, err := os.Open("/proc/net/netlink")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		if len(fl) >= 10 && fl[1] == "11" && socks[fl[9]] {
			return fl[9]
		}
	}
	return ""
}

// netlinkDrops returns the Drops column for the socket with inode.
func netlinkDrops(inode string) (uint64, bool) {
	if inode == "" {
		return 0, false
	}
	f, err := os.Open("/proc/net/netlink")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 10 && fl[9] == inode {
			n, _ := strconv.ParseUint(fl[8], 10, 64)
			return n, true
		}
	}
	return 0, false
}

// forkstatLines counts forkstat's event lines and its nobufs lines.
func forkstatLines(path string) (events, nobufs int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 {
			continue
		}
		if strings.Contains(sc.Text(), "nobufs") {
			nobufs++
			continue
		}
		switch fl[1] {
		case "fork", "exec", "exit", "comm", "clone", "uid", "gid", "sid", "ptrce", "core", "ptrace":
			events++
		}
	}
	return events, nobufs
}

type overloadReport struct {
	Case          string  `json:"case"`
	Skipped       string  `json:"skipped,omitempty"`
	Sustainable   float64 `json:"sustainable_rate"`
	TargetRate    float64 `json:"target_rate"`
	SendRate      float64 `json:"send_rate"`
	Seconds       float64 `json:"seconds"`
	Sent          int64   `json:"sent"`
	Delivered     int64   `json:"delivered"`
	SeqLost       float64 `json:"seq_lost"`
	SocketDrops   float64 `json:"socket_drops"`
	QueueDropped  float64 `json:"queue_dropped"`
	Unaccounted   int64   `json:"unaccounted"` // sent - delivered - socket_drops - queue_dropped
	QueueSize     int     `json:"queue_size"`
	QueueMaxBytes int     `json:"queue_max_bytes"`
	RSSBeforeMiB  float64 `json:"rss_before_mib"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	BoundMiB      float64 `json:"bound_mib"`
	WithinBound   bool    `json:"within_bound"`
	LossCounted   bool    `json:"losses_counted"`
	Killed        bool    `json:"killed_over_4gib,omitempty"`
}

// overload drives twice the sustainable rate for dur: (a) the file sink at
// twice its zero-loss rate (the reader is the limit, loss is at the socket);
// (b) a slow sink, stdout into a pipe the harness drains at pipeRate lines/s,
// at twice that (the sink is the limit: its queue fills and drops). Memory
// must stay within RSS before + 2 × queue_max_bytes (the queue's byte bound
// plus as much again for the Go heap's GC headroom).
func (h *harness) overload(rows []*row, dur time.Duration, pipeRate float64) []overloadReport {
	const queueSize, queueBytes = 65536, 64 << 20
	var out []overloadReport
	fileRate := 0.0
	for _, r := range rows {
		if r.Name == "file sink" {
			fileRate = r.ZeroLossRate
		}
	}
	if fileRate == 0 {
		fileRate = 100000
	}
	path := filepath.Join(h.tmp, "overload.jsonl")
	fileSink := fmt.Sprintf("{type: file, path: %q, queue_size: %d, queue_max_bytes: %d}", path, queueSize, queueBytes)
	var off, lines int64
	out = append(out, h.overloadCase("file sink, 2 × its zero-loss rate", fileRate, fileSink, nil, func() int64 {
		n, size := countLines(path, off)
		lines += n
		off = size
		return lines
	}, dur))
	os.Remove(path)

	pr, pw, err := os.Pipe()
	if err != nil {
		return out
	}
	st := &lineStats{}
	done := make(chan error, 1)
	go func() { done <- st.read(pr, nil, 0, pipeRate) }()
	out = append(out, h.overloadCase(fmt.Sprintf("slow sink (stdout pipe drained at %.0f lines/s), 2 × that", pipeRate), pipeRate,
		fmt.Sprintf("{type: stdout, queue_size: %d, queue_max_bytes: %d}", queueSize, queueBytes), pw, func() int64 { return st.lines.Load() }, dur))
	pw.Close()
	<-done
	pr.Close()
	return out
}

func (h *harness) overloadCase(name string, sustainable float64, sink string, stdout *os.File, delivered func() int64, dur time.Duration) overloadReport {
	rep := overloadReport{Case: name, Sustainable: sustainable, TargetRate: 2 * sustainable, QueueSize: 65536, QueueMaxBytes: 64 << 20}
	var w io.Writer
	if stdout != nil {
		w = stdout
	}
	d, err := h.startDaemon("overload", synthConfig(sink), w)
	if err != nil {
		rep.Skipped = err.Error()
		return rep
	}
	time.Sleep(300 * time.Millisecond)
	rep.RSSBeforeMiB = float64(statusKiB(d.pid, "VmRSS")) / 1024
	rep.BoundMiB = rep.RSSBeforeMiB + 2*float64(rep.QueueMaxBytes)/(1<<20)
	// Watch memory; stop the daemon past 4 GiB to protect the machine.
	watch := make(chan struct{})
	watched := make(chan bool, 1)
	go func() {
		killed := false
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-watch:
				watched <- killed
				return
			case <-t.C:
				if statusKiB(d.pid, "VmRSS") > 4<<20 && !killed {
					killed = true
					d.cmd.Process.Kill()
				}
			}
		}
	}()
	save := h.dur
	h.dur = dur
	t, err := h.daemonTrial(d, rep.TargetRate, delivered)
	h.dur = save
	rep.PeakRSSMiB = float64(statusKiB(d.pid, "VmHWM")) / 1024
	close(watch)
	rep.Killed = <-watched
	d.stop()
	if err != nil {
		rep.Skipped = err.Error()
		return rep
	}
	rep.SendRate, rep.Seconds, rep.Sent, rep.Delivered = t.SendRate, float64(t.Sent)/t.SendRate, t.Sent, t.Delivered
	rep.SeqLost, rep.SocketDrops, rep.QueueDropped = t.Daemon.SeqLost, t.Daemon.SocketDrops, t.Daemon.SinkDropped
	rep.Unaccounted = t.Sent - t.Delivered - int64(t.Daemon.SocketDrops) - int64(t.Daemon.SinkDropped)
	rep.WithinBound = !rep.Killed && rep.PeakRSSMiB <= rep.BoundMiB
	rep.LossCounted = rep.Unaccounted == 0
	h.logf("overload: %+v", rep)
	return rep
}

type idleReport struct {
	RSSMiB   float64 `json:"rss_mib"`
	HWMMiB   float64 `json:"peak_rss_mib"`
	TargetMB float64 `json:"target_mib"`
	Met      bool    `json:"met"`
	Note     string  `json:"note"`
}

// idle starts the daemon with the built-in default config (every process
// event to stdout, here /dev/null) and reads its memory after 5 s.
func (h *harness) idle() *idleReport {
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	saveSets, saveCPU := h.sets, h.daemonCPU
	h.sets, h.daemonCPU = nil, -1
	d, err := h.startDaemon("idle", "", devnull)
	h.sets, h.daemonCPU = saveSets, saveCPU
	if err != nil {
		return &idleReport{Note: err.Error()}
	}
	time.Sleep(5 * time.Second)
	r := &idleReport{
		RSSMiB:   float64(statusKiB(d.pid, "VmRSS")) / 1024,
		HWMMiB:   float64(statusKiB(d.pid, "VmHWM")) / 1024,
		TargetMB: 40,
		Note:     "built-in default config (process events → stdout, /dev/null here), metrics on a free port; VmRSS after 5 s",
	}
	r.Met = r.HWMMiB <= r.TargetMB
	d.stop()
	return r
}

func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\ncnbench %s  commit %s  kernel %s  %d CPUs  %s\n", rep.Started.Format(time.RFC3339), rep.Commit, rep.Host.Kernel, rep.Host.CPUs, rep.Host.Go)
	fmt.Fprintf(w, "64-byte payloads, sender on CPU %v, receiver on CPU %v, 32 MiB receive buffers\n\n", rep.Setup["sender_cpu"], rep.Setup["receiver_cpu"])
	fmt.Fprintf(w, "load average at start %s (other work on the machine makes the figures noisy)\n\n", rep.Host.LoadAvg)
	fmt.Fprintf(w, "%-26s %12s %7s %10s %9s %7s %8s %9s %9s  %s\n", "sink", "0-loss msg/s", "× bare", "1st loss/s", "CPU s/M", "× bare", "RSS MiB", "p50 µs", "p99 µs", "target")
	for _, r := range rep.Rows {
		if r.Skipped != "" {
			fmt.Fprintf(w, "%-26s skipped: %s\n", r.Name, r.Skipped)
			continue
		}
		p50, p99 := "-", "-"
		if r.Latency != nil {
			p50, p99 = fmt.Sprintf("%.0f", r.Latency.P50us), fmt.Sprintf("%.0f", r.Latency.P99us)
		}
		ratio, cpuRatio, rss := "1.00", "1.00", "-"
		if r.Name != "bare recvmmsg reader" {
			ratio, cpuRatio = fmt.Sprintf("%.2f", r.Ratio), fmt.Sprintf("%.2f", r.CPURatio)
			rss = fmt.Sprintf("%.1f", r.PeakRSSMiB)
		} else if len(r.Trials) > 0 && r.Trials[0].Reader != nil {
			rss = fmt.Sprintf("%.1f", float64(r.Trials[len(r.Trials)-1].Reader.HWMKiB)/1024)
		}
		target := r.Target
		if r.Met != nil {
			target += map[bool]string{true: "  met", false: "  MISSED"}[*r.Met]
			if r.TargetRatio > 0 {
				target += fmt.Sprintf(" (%.2f)", r.TargetRatio)
			}
		}
		first := "-"
		if r.FirstLoss > 0 {
			first = fmt.Sprintf("%.0f", r.FirstLoss)
		}
		fmt.Fprintf(w, "%-26s %12.0f %7s %10s %9.2f %7s %8s %9s %9s  %s\n", r.Name, r.ZeroLossRate, ratio, first, r.CPUPerM, cpuRatio, rss, p50, p99, target)
	}
	if len(rep.OTLP) > 0 {
		fmt.Fprintf(w, "bare OTLP exporter: %v\n", rep.OTLP)
	}
	if len(rep.NATS) > 0 {
		fmt.Fprintf(w, "nats: %v\n", rep.NATS)
	}
	if len(rep.Goals) > 0 {
		fmt.Fprintf(w, "\ngoals (ratios within this run):\n")
		for _, g := range rep.Goals {
			fmt.Fprintf(w, "  %-60s %5.2f  want %s: %s  (%s)\n", g.Name, g.Ratio, g.Want, map[bool]string{true: "met", false: "MISSED"}[g.Met], g.Detail)
		}
	}
	if s := rep.Storm; s != nil {
		fmt.Fprintf(w, "\nfork/exec storm: %d workers, %.0f s per reader\n", s.Workers, s.Seconds)
		fmt.Fprintf(w, "%-26s %10s %10s %10s %8s %8s\n", "reader", "procs/s", "events", "events/s", "lost", "CPU s")
		for _, x := range s.Sides {
			if x.Skipped != "" {
				fmt.Fprintf(w, "%-26s skipped: %s\n", x.Name, x.Skipped)
				continue
			}
			fmt.Fprintf(w, "%-26s %10.0f %10d %10.0f %8d %8.2f  %v\n", x.Name, x.ProcPerSec, x.Events, x.EventsPerS, x.Lost, x.CPUSecs, x.Detail)
		}
	}
	if rep.Enrich != nil {
		printEnrich(w, rep.Enrich)
	}
	if rep.Coverage != nil {
		printCoverage(w, rep.Coverage)
	}
	if len(rep.Overload) > 0 {
		fmt.Fprintf(w, "\noverload (queue_size 65536, queue_max_bytes 64 MiB):\n")
		for _, o := range rep.Overload {
			if o.Skipped != "" {
				fmt.Fprintf(w, "  %s: skipped: %s\n", o.Case, o.Skipped)
				continue
			}
			fmt.Fprintf(w, "  %s: sent %d at %.0f/s for %.0f s; delivered %d, socket drops %.0f (seq gaps seen %.0f), queue drops %.0f, unaccounted %d; RSS %.1f → peak %.1f MiB (bound %.1f): within bound %v, losses counted %v\n",
				o.Case, o.Sent, o.SendRate, o.Seconds, o.Delivered, o.SocketDrops, o.SeqLost, o.QueueDropped, o.Unaccounted, o.RSSBeforeMiB, o.PeakRSSMiB, o.BoundMiB, o.WithinBound, o.LossCounted)
		}
	}
	if i := rep.IdleRSS; i != nil {
		fmt.Fprintf(w, "\nidle RSS, default config: %.1f MiB (peak %.1f MiB), target ≤ %.0f MiB: %s\n", i.RSSMiB, i.HWMMiB, i.TargetMB, map[bool]string{true: "met", false: "MISSED"}[i.Met])
	}
}
