package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The coverage harness: how many short-lived execs the daemon names (its
// exec line carries the program's own arguments), against forkstat
// running beside it in the same run. A driver shell runs
//
//	for ((i=0; i<N; i++)); do /bin/true <tag>-$i; done
//
// on a quiet machine and with two busy loops (while :; do :; done) taking
// both CPUs. The daemon has one enriching route for exec events to a file;
// forkstat -e exec reads /proc/<pid>/cmdline in its receive loop. Every
// exec whose parent is the driver is one of the N (the table knows the
// parent from the fork event even when the exec was read too late), and
// is accounted as:
//
//	named:       its cmdline carries its own argument
//	late:        not named, and the line says what came late ("late")
//	missing:     not named, and the line lists cmdline under "missing"
//	unexplained: not named and saying neither (a defect)
//	wrong:       a cmdline with another exec's argument (a defect)
//
// forkstat's count is the number of distinct arguments in its exec lines.

// coverageRun is one daemon's run: N execs, with forkstat beside it.
type coverageRun struct {
	Round       int     `json:"round"`
	Load        string  `json:"load"` // quiet, loaded (two busy loops)
	Daemon      string  `json:"daemon"`
	Skipped     string  `json:"skipped,omitempty"`
	Execs       int     `json:"execs"`
	Lines       int     `json:"lines"` // exec lines of the driver's children
	Named       int     `json:"named"`
	Late        int     `json:"late"`
	Missing     int     `json:"missing"`
	Unexplained int     `json:"unexplained"`
	Wrong       int     `json:"wrong"`
	Forkstat    int     `json:"forkstat_named"` // -1: forkstat not run
	ForkstatErr string  `json:"forkstat_error,omitempty"`
	LoadAvg     string  `json:"loadavg"`
	Seconds     float64 `json:"seconds"`      // the driver's run time
	CPUSecs     float64 `json:"cpu_seconds"`  // the daemon's, over the driver's run and until its lines were written
	ForkstatCPU float64 `json:"forkstat_cpu"` // forkstat's, over the same time
	// ReaderCPU is the daemon's reader thread's CPU over the same time
	// (the SCHED_FIFO thread; 0 when there is none); Events the process
	// events it received meanwhile (the machine's, not only the driver's).
	ReaderCPU float64 `json:"reader_cpu_seconds,omitempty"`
	Events    float64 `json:"events"`
	// Capture is cnbridged_enrich_capture_total by result, and DelayP50/P90
	// the capture delay's quantiles (µs), from the daemon's metrics (this
	// tree's build; empty for a build without them).
	Capture  map[string]float64 `json:"capture,omitempty"`
	DelayP50 float64            `json:"capture_delay_p50_us,omitempty"`
	DelayP90 float64            `json:"capture_delay_p90_us,omitempty"`
	// Examples holds up to three lines that were neither named nor
	// explained, for the report.
	Examples []string `json:"examples,omitempty"`
}

// coverageReport holds every run and, per load and daemon, the summary.
type coverageReport struct {
	Execs   int               `json:"execs"`
	Rounds  int               `json:"rounds"`
	Runs    []coverageRun     `json:"runs"`
	Summary []coverageSummary `json:"summary"`
	Notes   []string          `json:"notes,omitempty"`
}

type coverageSummary struct {
	Load   string `json:"load"`
	Daemon string `json:"daemon"`
	Runs   int    `json:"runs"`
	// Named and Forkstat list each run's counts; AtLeastForkstat counts
	// the runs where the daemon named at least as many as forkstat.
	Named           []int `json:"named"`
	Forkstat        []int `json:"forkstat"`
	AtLeastForkstat int   `json:"at_least_forkstat"`
	Unexplained     int   `json:"unexplained"`
	Wrong           int   `json:"wrong"`
}

// coverageDaemon is one daemon build and the --set options it runs with.
type coverageDaemon struct {
	name, bin string
	sets      []string
	// route are extra keys of the enrich part's route (--variant-route).
	route string
}

// coverage runs rounds × {quiet, loaded} × daemons, alternating the
// daemons' order from round to round.
func (h *harness) coverage(execs, rounds int, loads []string, daemons []coverageDaemon) *coverageReport {
	rep := &coverageReport{Execs: execs, Rounds: rounds}
	for r := range rounds {
		for _, load := range loads {
			order := slices.Clone(daemons)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, d := range order {
				run := h.coverageRun(d, load, execs, fmt.Sprintf("r%d-%s", r, load))
				run.Round = r
				h.logf("coverage: round %d %-6s %-22s named %3d/%d late %3d missing %3d unexplained %d wrong %d forkstat %3d  load %s",
					r, load, d.name, run.Named, run.Execs, run.Late, run.Missing, run.Unexplained, run.Wrong, run.Forkstat, run.LoadAvg)
				if run.Skipped != "" {
					h.logf("coverage: %s: %s", d.name, run.Skipped)
				}
				rep.Runs = append(rep.Runs, run)
			}
		}
	}
	for _, load := range loads {
		for _, d := range daemons {
			s := coverageSummary{Load: load, Daemon: d.name}
			for _, run := range rep.Runs {
				if run.Load != load || run.Daemon != d.name || run.Skipped != "" {
					continue
				}
				s.Runs++
				s.Named = append(s.Named, run.Named)
				s.Forkstat = append(s.Forkstat, run.Forkstat)
				if run.Forkstat >= 0 && run.Named >= run.Forkstat {
					s.AtLeastForkstat++
				}
				s.Unexplained += run.Unexplained
				s.Wrong += run.Wrong
			}
			rep.Summary = append(rep.Summary, s)
		}
	}
	rep.Notes = append(rep.Notes,
		"named: the exec line's cmdline carries the exec's own argument; forkstat: distinct arguments in forkstat -e exec's lines, same run",
		"late / missing: not named, and the line lists what came late (late) or could not be read (missing)",
		"loaded: two busy loops (bash: while :; do :; done) for the whole run")
	return rep
}

// coverageRun starts the daemon and forkstat, runs the driver, and
// accounts for its execs.
func (h *harness) coverageRun(d coverageDaemon, load string, execs int, tag string) coverageRun {
	run := coverageRun{Load: load, Daemon: d.name, Execs: execs, Forkstat: -1}
	tag = fmt.Sprintf("cnbcov%d%s", os.Getpid(), strings.ReplaceAll(tag, "-", ""))
	path := filepath.Join(h.tmp, tag+".jsonl")
	cfg := fmt.Sprintf(`log: {level: warn, format: json}
listener: {groups: [1], receive_buffer_bytes: %d}
sinks:
  out: {type: file, path: %q}
routes:
  - {match: "1.1", events: [exec], enrich: true, sinks: [out]}
`, 32<<20, path)
	saveBin, saveSets, saveCPU := h.bin, h.sets, h.daemonCPU
	h.bin, h.noStateDir, h.sets, h.daemonCPU = d.bin, d.bin != saveBin, append(slices.Clone(h.sets), d.sets...), -1
	dm, err := h.startDaemon(tag, cfg, nil)
	h.bin, h.noStateDir, h.sets, h.daemonCPU = saveBin, false, saveSets, saveCPU
	if err != nil {
		run.Skipped = err.Error()
		return run
	}
	defer os.Remove(path)
	m0 := dm.metrics()

	fs, fsErr := startForkstat(filepath.Join(h.tmp, tag+".forkstat"))
	if fsErr != nil {
		run.ForkstatErr = fsErr.Error()
	}
	var busy []*exec.Cmd
	if load == "loaded" {
		for range 2 {
			c := exec.Command("bash", "-c", "while :; do :; done")
			if err := c.Start(); err == nil {
				busy = append(busy, c)
			}
		}
		time.Sleep(200 * time.Millisecond) // let them take the CPUs
	}
	run.LoadAvg = loadavg()
	cpu0, fcpu0 := cpuSeconds(dm.pid), 0.0
	rcpu0, reader := readerCPUSeconds(dm.pid)
	if fs != nil {
		fcpu0 = cpuSeconds(fs.cmd.Process.Pid)
	}
	ev0 := dm.metrics().get("cnbridged_messages_received_total", "idx", "1", "val", "1")
	start := time.Now()
	driver := exec.Command("bash", "-c", fmt.Sprintf("for ((i=0; i<%d; i++)); do /bin/true %s-$i; done", execs, tag))
	derr := driver.Run()
	run.Seconds = time.Since(start).Seconds()
	for _, c := range busy {
		c.Process.Kill()
		c.Wait()
	}
	if derr != nil {
		run.Skipped = "driver: " + derr.Error()
	}
	drv := driver.Process.Pid
	// The daemon writes every exec line; wait for the N, or for 10 s.
	var lines []covLine
	for deadline := time.Now().Add(10 * time.Second); ; {
		lines = execLinesOf(path, drv)
		if len(lines) >= execs || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	run.CPUSecs = cpuSeconds(dm.pid) - cpu0
	if rcpu, ok := readerCPUSeconds(dm.pid); ok && reader {
		run.ReaderCPU = rcpu - rcpu0
	}
	run.Events = dm.metrics().get("cnbridged_messages_received_total", "idx", "1", "val", "1") - ev0
	if fs != nil {
		run.ForkstatCPU = cpuSeconds(fs.cmd.Process.Pid) - fcpu0
		named, err := fs.stop(tag)
		if err != nil {
			run.ForkstatErr = err.Error()
		} else {
			run.Forkstat = named
		}
	}
	m1 := dm.metrics()
	dm.stop()
	run.Lines = len(lines)
	for _, l := range lines {
		switch k := l.kind(tag); k {
		case "named":
			run.Named++
		case "late":
			run.Late++
		case "missing":
			run.Missing++
		case "wrong":
			run.Wrong++
		default:
			run.Unexplained++
			if len(run.Examples) < 3 {
				run.Examples = append(run.Examples, l.raw)
			}
		}
	}
	if run.Wrong > 0 && len(run.Examples) < 3 {
		for _, l := range lines {
			if l.kind(tag) == "wrong" && len(run.Examples) < 3 {
				run.Examples = append(run.Examples, l.raw)
			}
		}
	}
	run.Capture = map[string]float64{}
	for _, r := range []string{"received", "partial", "late", "gone", "error"} {
		if v := m1.get("cnbridged_enrich_capture_total", "result", r) - m0.get("cnbridged_enrich_capture_total", "result", r); v != 0 {
			run.Capture[r] = v
		}
	}
	run.DelayP50 = histQuantile(m0, m1, "cnbridged_enrich_capture_delay_seconds", 0.5) * 1e6
	run.DelayP90 = histQuantile(m0, m1, "cnbridged_enrich_capture_delay_seconds", 0.9) * 1e6

	return run
}

// covLine is one exec line of the daemon's file.
type covLine struct {
	raw     string
	pid     int
	cmdline []string
	missing []string
	late    []string
}

// kind accounts for the exec of the driver's child this line describes.
func (l covLine) kind(tag string) string {
	for _, a := range l.cmdline {
		if strings.HasPrefix(a, tag+"-") {
			return "named"
		}
	}
	if len(l.cmdline) > 0 {
		return "wrong"
	}
	switch {
	case len(l.late) > 0:
		return "late"
	case slices.Contains(l.missing, "cmdline"):
		return "missing"
	}
	return "unexplained"
}

// execLinesOf returns the exec lines in path of the children of ppid.
func execLinesOf(path string, ppid int) []covLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []covLine
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' && bytes.Contains(b, []byte(`"event":"exec"`)) {
			var v struct {
				Proc struct {
					PID int `json:"pid"`
				} `json:"proc"`
				Process struct {
					PPID    int      `json:"ppid"`
					Cmdline []string `json:"cmdline"`
					Missing []string `json:"missing"`
					Late    []string `json:"late"`
				} `json:"process"`
			}
			if json.Unmarshal(b, &v) == nil && v.Process.PPID == ppid {
				out = append(out, covLine{raw: strings.TrimSpace(string(b)), pid: v.Proc.PID, cmdline: v.Process.Cmdline,
					missing: v.Process.Missing, late: v.Process.Late})
			}
		}
		if err != nil {
			return out
		}
	}
}

// forkstatProc is forkstat -e exec writing to a file.
type forkstatProc struct {
	cmd  *exec.Cmd
	path string
	out  *os.File
}

// errNoForkstat is returned when forkstat is not installed.
var errNoForkstat = errors.New("forkstat is not installed (apt-get install forkstat)")

// startForkstat starts forkstat -e exec (line-buffered) and waits until it
// has printed its header, then a little longer for its subscription.
func startForkstat(path string) (*forkstatProc, error) {
	bin, err := exec.LookPath("forkstat")
	if err != nil {
		return nil, errNoForkstat
	}
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	f := &forkstatProc{cmd: exec.Command(bin, "-e", "exec", "-l"), path: path, out: out}
	f.cmd.Stdout, f.cmd.Stderr = out, out
	if err := f.cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("Event")) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return f, nil
}

// stop ends forkstat and counts the distinct tag-<i> arguments it named.
func (f *forkstatProc) stop(tag string) (int, error) {
	time.Sleep(200 * time.Millisecond) // its last lines
	f.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- f.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-done
	}
	f.out.Close()
	defer os.Remove(f.path)
	b, err := os.ReadFile(f.path)
	if err != nil {
		return 0, err
	}
	return countTagged(bytes.NewReader(b), tag), nil
}

// countTagged counts the distinct "<tag>-<i>" words in forkstat's exec
// lines.
func countTagged(r io.Reader, tag string) int {
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 || fl[1] != "exec" {
			continue
		}
		for _, w := range fl[2:] {
			if rest, ok := strings.CutPrefix(w, tag+"-"); ok {
				if _, err := strconv.Atoi(rest); err == nil {
					seen[rest] = true
				}
			}
		}
	}
	return len(seen)
}

// histQuantile estimates quantile q of a Prometheus histogram's increase
// between two scrapes, interpolating linearly within a bucket; 0 when it
// has no observations.
func histQuantile(m0, m1 metrics, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for _, s := range m1 {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil && s.labels["le"] != "+Inf" {
			continue
		}
		if s.labels["le"] == "+Inf" {
			le = math.Inf(1)
		}
		bs = append(bs, bucket{le, s.v - m0.get(name+"_bucket", "le", s.labels["le"])})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	want := q * bs[len(bs)-1].n
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= want {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			if b.n == prevN {
				return b.le
			}
			return prevLe + (b.le-prevLe)*(want-prevN)/(b.n-prevN)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}

func printCoverage(w io.Writer, c *coverageReport) {
	fmt.Fprintf(w, "\nexec coverage: %d × /bin/true <unique arg> per run, forkstat -e exec beside the daemon, %d rounds\n", c.Execs, c.Rounds)
	fmt.Fprintf(w, "%-5s %-6s %-24s %6s %5s %7s %6s %5s %8s %7s %8s %8s %9s %10s  %s\n",
		"round", "load", "daemon", "named", "late", "missing", "unexpl", "wrong", "forkstat", "loadavg", "CPU ms", "fs CPU", "µs/event", "delay p50/p90 µs", "capture")
	for _, r := range c.Runs {
		if r.Skipped != "" {
			fmt.Fprintf(w, "%-5d %-6s %-24s skipped: %s\n", r.Round, r.Load, r.Daemon, r.Skipped)
			continue
		}
		fsn := "-"
		if r.Forkstat >= 0 {
			fsn = strconv.Itoa(r.Forkstat)
		}
		delay := "-"
		if r.DelayP50 > 0 {
			delay = fmt.Sprintf("%.0f/%.0f", r.DelayP50, r.DelayP90)
		}
		fmt.Fprintf(w, "%-5d %-6s %-24s %6d %5d %7d %6d %5d %8s %7s %8.0f %8.0f %10s  %v\n",
			r.Round, r.Load, r.Daemon, r.Named, r.Late, r.Missing, r.Unexplained, r.Wrong, fsn, strings.Fields(r.LoadAvg + " -")[0],
			r.CPUSecs*1000, r.ForkstatCPU*1000, delay, r.Capture)
		for _, ex := range r.Examples {
			fmt.Fprintf(w, "      unexplained: %.300s\n", ex)
		}
	}
	fmt.Fprintf(w, "\n%-6s %-24s %-28s %-28s %s\n", "load", "daemon", "named per run", "forkstat per run", "runs ≥ forkstat")
	for _, s := range c.Summary {
		fmt.Fprintf(w, "%-6s %-24s %-28s %-28s %d of %d\n", s.Load, s.Daemon, fmt.Sprint(s.Named), fmt.Sprint(s.Forkstat), s.AtLeastForkstat, s.Runs)
	}
}

// coverageDaemons returns this tree's daemon, the baseline (if any) and
// the variants, each with its --variant-set options.
func coverageDaemons(bin, baseline string, variants, sets, routes []string) ([]coverageDaemon, error) {
	ds := []coverageDaemon{{name: "this-tree", bin: bin}}
	if baseline != "" {
		ds = append(ds, coverageDaemon{name: "baseline", bin: baseline})
	}
	for _, v := range variants {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--variant %q: want NAME=BINARY", v)
		}
		if path == "." {
			path = bin
		}
		ds = append(ds, coverageDaemon{name: name, bin: path})
	}
	for _, s := range sets {
		name, kv, ok := strings.Cut(s, "=")
		i := slices.IndexFunc(ds, func(d coverageDaemon) bool { return d.name == name })
		if !ok || i < 0 || !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("--variant-set %q: want NAME=key=value for a daemon named by --variant (or this-tree, baseline)", s)
		}
		ds[i].sets = append(ds[i].sets, kv)
	}
	for _, r := range routes {
		name, keys, ok := strings.Cut(r, "=")
		i := slices.IndexFunc(ds, func(d coverageDaemon) bool { return d.name == name })
		if !ok || i < 0 || keys == "" {
			return nil, fmt.Errorf("--variant-route %q: want NAME=KEYS for a daemon named by --variant (or this-tree, baseline)", r)
		}
		ds[i].route = keys
	}
	return ds, nil
}

// buildRef builds the daemon from commit ref of the repository (git
// archive into a temporary directory) and returns the binary's path.
func (h *harness) buildRef(ref string) (string, error) {
	src := filepath.Join(h.tmp, "ref-"+ref)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	h.logf("building cnbridged at %s", ref)
	archive := exec.Command("sh", "-c", `git archive "$1" | tar -x -C "$2"`, "sh", ref, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("--baseline-ref %s: git archive: %w: %s", ref, err, out)
	}
	bin := filepath.Join(h.tmp, "cnbridged-"+ref)
	build := exec.Command("go", "build", "-o", bin, "./cmd/cnbridged")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("--baseline-ref %s: go build: %w: %s", ref, err, out)
	}
	return bin, nil
}
