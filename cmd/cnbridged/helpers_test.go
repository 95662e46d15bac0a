package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// built is a daemon binary built once for the end-to-end tests.
type built struct {
	once sync.Once
	path string
	err  error
}

var plainBin, raceBin built

// daemonBinary builds the daemon once. Throughput tests use a plain build.
func daemonBinary(t *testing.T) string { return buildDaemon(t, &plainBin, false) }

// raceBinary is built with -race when the tests run with -race, for the
// tests that exercise concurrency in the daemon (reloads).
func raceBinary(t *testing.T) string {
	if !raceEnabled {
		return daemonBinary(t)
	}
	return buildDaemon(t, &raceBin, true)
}

func buildDaemon(t *testing.T, b *built, race bool) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "cnbridged-e2e-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "cnbridged")
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// rootReason is why the daemon's tests need root (cntest.NeedRoot).
const rootReason = "joins connector multicast groups and subscribes to process events (CAP_NET_ADMIN)"

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(natstest.FreePort(t)))
}

// proc is a running daemon.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	metrics string
	stderr  *cntest.SyncBuffer
	dir     string
	config  string
}

// startDaemon writes config (with %DIR% replaced by a temp dir) and runs
// the daemon on it until it is ready.
func startDaemon(t *testing.T, config string, extra ...string) *proc {
	t.Helper()
	return startBinary(t, daemonBinary(t), t.TempDir(), config, extra...)
}

// startBinary writes config (with %DIR% replaced by dir) into dir and runs
// bin on it until it is ready.
func startBinary(t *testing.T, bin, dir, config string, extra ...string) *proc {
	t.Helper()
	config = strings.ReplaceAll(config, "%DIR%", dir)
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return startOn(t, bin, dir, path, extra...)
}

// startOn runs bin on the config file at path until it is ready.
func startOn(t *testing.T, bin, dir, path string, extra ...string) *proc {
	t.Helper()
	return startWrapped(t, nil, bin, dir, path, extra...)
}

// startWrapped is startOn with bin run by the command wrap (e.g. unshare).
func startWrapped(t *testing.T, wrap []string, bin, dir, path string, extra ...string) *proc {
	t.Helper()
	addr := freePort(t)
	argv := append(append(slices.Clone(wrap), bin), append(daemonArgs(dir, path, addr), extra...)...)
	p := newProc(t, exec.Command(argv[0], argv[1:]...), dir, path, addr)
	p.cmd.Stdout = p.stderr
	p.launch()
	return p
}

// daemonArgs are the run arguments of every test daemon: its config, a
// metrics port, JSON logs, and its own tap socket and restart trace under
// dir (the defaults, /run/cnbridged and /var/lib/cnbridged, would be
// shared with the host and carry one test's kernel seqs into the next).
func daemonArgs(dir, path, addr string) []string {
	return []string{"run", "--config", path, "--set", "metrics.listen=" + addr, "--set", "log.format=json",
		"--set", "tap.socket=" + filepath.Join(dir, "tap.sock"),
		"--set", "state_dir=" + filepath.Join(dir, "state")}
}

func newProc(t *testing.T, cmd *exec.Cmd, dir, path, addr string) *proc {
	p := &proc{t: t, cmd: cmd, metrics: addr, stderr: &cntest.SyncBuffer{}, dir: dir, config: path}
	cmd.Stderr = p.stderr
	return p
}

// launch starts the daemon, arranges for it to be killed when the test
// ends (logging what it wrote if the test failed), and waits until its
// /readyz says ready.
func (p *proc) launch() {
	t := p.t
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after 20s (last: %v)\n%s", err, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("daemon exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("daemon did not stop within 30s\n%s", p.stderr.String())
	}
}

// metric returns the sum of the samples of name whose labels include sel.
func (p *proc) metric(name string, sel map[string]string) float64 {
	p.t.Helper()
	fams, err := scrape("http://" + p.metrics + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	return value(fams, name, sel)
}

func (p *proc) families() map[string]*dto.MetricFamily {
	p.t.Helper()
	fams, err := scrape("http://" + p.metrics + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	return fams
}

// line is one output line, decoded loosely.
type line struct {
	Time    string         `json:"time"`
	Host    string         `json:"host"`
	Type    string         `json:"type"`
	Idx     uint32         `json:"idx"`
	Val     uint32         `json:"val"`
	Seq     uint32         `json:"seq"`
	Ack     uint32         `json:"ack"`
	Len     uint16         `json:"len"`
	Sender  uint32         `json:"sender"`
	Data    []byte         `json:"data"`
	Proc    map[string]any `json:"proc"`
	Process map[string]any `json:"process"`
	CPU     *uint32        `json:"cpu"`
	FromSeq uint32         `json:"from_seq"`
	ToSeq   uint32         `json:"to_seq"`
	Lost    uint32         `json:"lost"`
	raw     string
}

// readLines parses every line of the files matching glob, in file order
// (rotated files first, oldest first). A line the sink is still writing
// (no newline yet) is left for the next call.
//
// Tests poll files that grow, many with every process event of the
// machine, so each file's lines are parsed once: the next call parses only
// what was appended (a file replaced or cut short is parsed again).
func readLines(t *testing.T, paths ...string) []line {
	t.Helper()
	if len(paths) == 1 {
		return parsedLines(t, paths[0])
	}
	var out []line
	for _, path := range paths {
		out = append(out, parsedLines(t, path)...)
	}
	return out
}

// parsedFile is what readLines has parsed of one file.
type parsedFile struct {
	dev, ino uint64
	head     string // the file's first bytes, to tell a new file on a reused inode
	off      int64  // bytes parsed: up to the end of the last complete line
	lines    []line
}

// parsed is readLines' cache, by path.
var parsed = struct {
	sync.Mutex
	files map[string]*parsedFile
}{files: map[string]*parsedFile{}}

func parsedLines(t *testing.T, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	var dev, ino uint64
	if st != nil {
		dev, ino = uint64(st.Dev), st.Ino
	}
	head := make([]byte, 64)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]

	parsed.Lock()
	defer parsed.Unlock()
	pf := parsed.files[path]
	if pf == nil || pf.dev != dev || pf.ino != ino || fi.Size() < pf.off || !strings.HasPrefix(string(head), pf.head) {
		if pf == nil {
			// Forget the file with the test that read it (its lines
			// can be many).
			t.Cleanup(func() {
				parsed.Lock()
				delete(parsed.files, path)
				parsed.Unlock()
			})
		}
		pf = &parsedFile{dev: dev, ino: ino}
		parsed.files[path] = pf
	}
	if len(pf.head) < len(head) {
		pf.head = string(head)
	}
	b := make([]byte, fi.Size()-pf.off)
	n, err = f.ReadAt(b, pf.off)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	b = b[:n]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	for raw := range bytes.Lines(b) {
		raw = bytes.TrimSuffix(raw, []byte{'\n'})
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("%s: line is not JSON: %v: %q", path, err, raw)
		}
		l.raw = string(raw)
		pf.lines = append(pf.lines, l)
	}
	pf.off += int64(len(b))
	// The cache's own lines, not a copy (polls of a file of every event on
	// the machine would copy it each time): clipped, so that a caller's
	// append copies instead of writing into the cache. Callers only read.
	return slices.Clip(pf.lines)
}

// emitter sends synthetic connector messages from a userspace socket.
type emitter struct {
	t   *testing.T
	e   *listener.Emitter
	buf []byte
}

func newEmitter(t *testing.T) *emitter {
	t.Helper()
	e, err := listener.NewEmitter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &emitter{t: t, e: e}
}

func (e *emitter) send(group int, h cnmsg.Header, data []byte) {
	e.t.Helper()
	e.buf = cnmsg.AppendMessage(e.buf[:0], h.Seq, 0, h, data)
	if err := e.e.Emit(e.buf, group); err != nil {
		e.t.Fatal(err)
	}
}
