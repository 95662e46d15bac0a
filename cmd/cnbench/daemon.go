package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// daemonProc is a running cnbridged.
type daemonProc struct {
	cmd  *exec.Cmd
	pid  int
	url  string
	log  string
	done chan struct{}
	err  error
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 19464
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon runs the daemon with config text cfg (a metrics.listen key is
// added) and waits until /readyz answers 200. stdout receives its stdout
// (nil: /dev/null). extra are more command-line arguments.
func (h *harness) startDaemon(name, cfg string, stdout io.Writer, extra ...string) (*daemonProc, error) {
	port := freePort()
	args := []string{"run", "--no-watch", "--log-level", "warn", "--set", fmt.Sprintf("metrics.listen=127.0.0.1:%d", port)}
	if !h.noStateDir {
		args = append(args, "--set", "state_dir="+filepath.Join(h.tmp, name+"-state"))
	}
	if cfg != "" {
		path := filepath.Join(h.tmp, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--config", path)
	}
	for _, s := range h.sets {
		args = append(args, "--set", s)
	}
	if h.profileDir != "" {
		args = append(args, "--cpu-profile", filepath.Join(h.profileDir, name+".pprof"))
	}
	args = append(args, extra...)
	argv := pinned(h.daemonCPU, append([]string{h.bin}, args...)...)
	d := &daemonProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(h.tmp, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stderr = logf
	if stdout != nil {
		d.cmd.Stdout = stdout
	}
	d.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	if h.noStateDir {
		// A build that may not know the key: the environment names it
		// without failing it (an unknown variable is ignored). Without
		// it the daemon would take the host's restart trace and report
		// the time since another daemon stopped as loss.
		d.cmd.Env = append(d.cmd.Env, "CNBRIDGED_STATE_DIR="+filepath.Join(h.tmp, name+"-state"))
	}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d.pid = d.cmd.Process.Pid // taskset execs the daemon: same pid
	go func() {
		d.err = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	c := http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return nil, fmt.Errorf("cnbridged exited at start (%v): %s", d.err, d.logTail())
		default:
		}
		resp, err := c.Get(d.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stop()
	return nil, fmt.Errorf("cnbridged not ready within 10s: %s", d.logTail())
}

func (d *daemonProc) logTail() string {
	b, _ := os.ReadFile(d.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

func (d *daemonProc) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	return d.err
}

func (d *daemonProc) metrics() metrics {
	ms, _ := scrape(d.url)
	return ms
}

// daemonCounts is what the harness reads from a daemon's metrics.
type daemonCounts struct {
	Received    float64 `json:"received"`
	SeqLost     float64 `json:"seq_lost"`
	SocketDrops float64 `json:"socket_drops"`
	Overruns    float64 `json:"socket_overruns"`
	SinkSent    float64 `json:"sink_sent"`
	SinkDropped float64 `json:"sink_dropped"`
	SinkFailed  float64 `json:"sink_failed"`
}

func countsOf(ms metrics, idx, val string) daemonCounts {
	return daemonCounts{
		Received:    ms.get("cnbridged_messages_received_total", "idx", idx, "val", val),
		SeqLost:     ms.get("cnbridged_messages_lost_total", "idx", idx, "val", val),
		SocketDrops: ms.get("cnbridged_socket_drops_total"),
		Overruns:    ms.get("cnbridged_socket_overruns_total"),
		SinkSent:    ms.get("cnbridged_sink_messages_total", "sink", "out", "result", "sent"),
		SinkDropped: ms.get("cnbridged_sink_messages_total", "sink", "out", "result", "dropped"),
		SinkFailed:  ms.get("cnbridged_sink_messages_total", "sink", "out", "result", "failed"),
	}
}

func (a daemonCounts) sub(b daemonCounts) daemonCounts {
	return daemonCounts{
		Received: a.Received - b.Received, SeqLost: a.SeqLost - b.SeqLost,
		SocketDrops: a.SocketDrops - b.SocketDrops, Overruns: a.Overruns - b.Overruns,
		SinkSent: a.SinkSent - b.SinkSent, SinkDropped: a.SinkDropped - b.SinkDropped, SinkFailed: a.SinkFailed - b.SinkFailed,
	}
}

// lineStats reads JSON lines (from a file being appended to, or a pipe),
// counting data lines and, while timing is on, the latency from the
// payload's send timestamp to the moment the harness read the line.
type lineStats struct {
	lines  atomic.Int64
	losses atomic.Int64
	timing atomic.Bool
	mu     sync.Mutex
	h      hist
}

var dataKey = []byte(`"data":"`)

func (s *lineStats) line(l []byte, now int64) {
	if bytes.Contains(l, []byte(`"type":"loss"`)) {
		s.losses.Add(1)
		return
	}
	s.lines.Add(1)
	if !s.timing.Load() {
		return
	}
	i := bytes.Index(l, dataKey)
	if i < 0 || len(l) < i+len(dataKey)+12 {
		return
	}
	var ts [9]byte
	if _, err := base64.StdEncoding.Decode(ts[:], l[i+len(dataKey):i+len(dataKey)+12]); err != nil {
		return
	}
	s.mu.Lock()
	s.h.add(now - int64(binary.NativeEndian.Uint64(ts[:8])))
	s.mu.Unlock()
}

// takeHist returns the latency histogram so far and resets it.
func (s *lineStats) takeHist() hist {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.h
	s.h = hist{}
	return h
}

// tail follows path from its current end until stop is closed, polling
// every 100 µs when there is nothing new; the latency it sees is therefore
// "written by the daemon → read by the harness", an upper bound.
func (s *lineStats) tail(path string, stop <-chan struct{}) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	return s.read(f, stop, 100*time.Microsecond, 0)
}

// read reads lines from r until EOF and stop, or (for a pipe) EOF. With
// maxRate > 0 it reads no faster than maxRate lines per second.
func (s *lineStats) read(r io.Reader, stop <-chan struct{}, poll time.Duration, maxRate float64) error {
	buf := make([]byte, 256<<10)
	var carry []byte
	start := time.Now()
	for {
		n, err := r.Read(buf)
		now := time.Now().UnixNano()
		if n > 0 {
			b := buf[:n]
			if len(carry) > 0 {
				carry = append(carry, b...)
				b = carry
			}
			for {
				j := bytes.IndexByte(b, '\n')
				if j < 0 {
					break
				}
				s.line(b[:j], now)
				b = b[j+1:]
			}
			carry = append(carry[:0:0], b...)
			if maxRate > 0 {
				due := start.Add(time.Duration(float64(s.lines.Load()) / maxRate * 1e9))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF && poll == 0 {
			return nil
		}
		select {
		case <-stop:
			if poll > 0 {
				return nil
			}
		default:
		}
		if poll > 0 {
			time.Sleep(poll)
		}
	}
}

// countLines counts data lines in path from offset on.
func countLines(path string, offset int64) (lines, size int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	br := bufio.NewReaderSize(f, 1<<20)
	size = offset
	for {
		l, err := br.ReadSlice('\n')
		size += int64(len(l))
		if len(l) > 0 && l[len(l)-1] == '\n' && !bytes.Contains(l, []byte(`"type":"loss"`)) {
			lines++
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return lines, size
		}
	}
}
