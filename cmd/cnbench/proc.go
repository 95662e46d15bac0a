package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/proc"
)

// cpuSeconds returns utime+stime of pid (all its threads) in seconds.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64) // field 14
	st, _ := strconv.ParseUint(f[12], 10, 64) // field 15
	return float64(ut+st) / proc.UserHZ
}

// readerCPUSeconds returns utime+stime of pid's thread that runs at
// SCHED_FIFO, the daemon's reader (listener.reader_priority), and whether
// there is one.
func readerCPUSeconds(pid int) (float64, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		const policy, utime, stime = 41 - 3, 14 - 3, 15 - 3 // fields after the command name start at 3
		if len(f) <= policy || f[policy] != "1" {           // SCHED_FIFO
			continue
		}
		ut, _ := strconv.ParseUint(f[utime], 10, 64)
		st, _ := strconv.ParseUint(f[stime], 10, 64)
		return float64(ut+st) / proc.UserHZ, true
	}
	return 0, false
}

// statusKiB returns a "Vm…:  N kB" field of /proc/<pid>/status.
func statusKiB(pid int, key string) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// pinned prefixes argv with taskset when cpu >= 0 and taskset exists, so
// that every thread of the child starts on that CPU.
func pinned(cpu int, argv ...string) []string {
	if cpu < 0 {
		return argv
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return argv
	}
	return append([]string{ts, "-c", strconv.Itoa(cpu)}, argv...)
}

// runJSON runs argv and decodes its JSON output into v.
func runJSON(ctx context.Context, v any, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return json.Unmarshal(out.Bytes(), v)
}

// worker is a long-lived child that prints "ready" and, on SIGTERM, its
// JSON result.
type worker struct {
	cmd *exec.Cmd
	out *bufio.Reader
	err bytes.Buffer
}

func startWorker(argv ...string) (*worker, error) {
	w := &worker{cmd: exec.Command(argv[0], argv[1:]...)}
	w.cmd.Stderr = &w.err
	p, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	w.out = bufio.NewReader(p)
	line, err := w.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		w.cmd.Process.Kill()
		w.cmd.Wait()
		return nil, fmt.Errorf("%s: not ready: %q %v: %s", argv[0], line, err, w.err.String())
	}
	return w, nil
}

func (w *worker) stop(v any) error {
	w.cmd.Process.Signal(os.Interrupt)
	b, _ := io.ReadAll(w.out)
	if err := w.cmd.Wait(); err != nil {
		return fmt.Errorf("worker: %w: %s", err, w.err.String())
	}
	return json.Unmarshal(b, v)
}

// sample is one Prometheus text-format sample.
type sample struct {
	name   string
	labels map[string]string
	v      float64
}

type metrics []sample

// scrape reads the daemon's /metrics.
func scrape(url string) (metrics, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ms metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		key := line[:sp]
		s := sample{name: key, v: v}
		if i := strings.IndexByte(key, '{'); i >= 0 {
			s.name = key[:i]
			s.labels = map[string]string{}
			for _, kv := range strings.Split(strings.TrimSuffix(key[i+1:], "}"), ",") {
				k, val, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(val, `"`)
			}
		}
		ms = append(ms, s)
	}
	return ms, sc.Err()
}

// get sums the samples of name whose labels include every pair in kv
// ("key", "value", …).
func (ms metrics) get(name string, kv ...string) float64 {
	var t float64
next:
	for _, s := range ms {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				continue next
			}
		}
		t += s.v
	}
	return t
}
