package tap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(dialHelper())
	}
	goleak.VerifyTestMain(m)
}

// startServer serves a tap socket in a temporary directory until the test
// ends.
func startServer(t testing.TB, clientBuffer int) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	path := filepath.Join(t.TempDir(), "run", "tap.sock")
	s, err := Listen(ServerConfig{Path: path, Mode: 0o600, ClientBuffer: clientBuffer, Metrics: NewMetrics(reg)}, "h1", event.NewEncoder("h1"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file left behind: %v", err)
		}
	})
	return s, reg
}

func execRecord(pid uint32) *event.Record {
	r := &event.Record{Time: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC).UnixNano(), HasProc: true}
	r.Msg.ID = cnmsg.ID{Idx: 1, Val: 1}
	r.Proc = cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}
	return r
}

// waitClients waits until the server has n clients.
func waitClients(t testing.TB, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for int(s.nclient.Load()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("clients = %d, want %d", s.nclient.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestServerDelivers(t *testing.T) {
	s, _ := startServer(t, 16)
	if err := s.Write(execRecord(1)); err != nil {
		t.Fatal(err)
	}
	if len(s.buf) != 0 || testutil.ToFloat64(s.mLines) != 0 { // nobody listens: nothing encoded or sent
		t.Fatalf("with no client Write encoded %d bytes and sent %v lines, want none", len(s.buf), testutil.ToFloat64(s.mLines))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- ReadSocket(ctx, s.Addr(), func(b []byte) error { got <- string(b); return nil })
	}()
	waitClients(t, s, 1)
	for pid := uint32(10); pid < 13; pid++ {
		s.Write(execRecord(pid))
	}
	for pid := 10; pid < 13; pid++ {
		line := <-got
		l, err := Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := l.PID(); int(p) != pid || l.Event() != "exec" || l.Host != "h1" {
			t.Errorf("got %s, want the exec of pid %d from h1", line, pid)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ReadSocket after cancel = %v", err)
	}
	waitClients(t, s, 0)
}

// TestSlowReaderDrops: a client that does not read never slows Write; what
// it misses is counted and, once it reads again, reported to it exactly.
func TestSlowReaderDrops(t *testing.T) {
	const buffer, total = 8, 20000
	s, reg := startServer(t, buffer)
	conn, err := net.Dial("unix", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitClients(t, s, 1)
	// Write all without the client reading: Write must return every time
	// (a blocking Write would hang the test here).
	for i := range total {
		s.Write(execRecord(uint32(i + 1)))
	}
	dropped := testutil.ToFloat64(s.mDropped)
	if dropped == 0 {
		t.Fatal("nothing dropped for a reader that did not read")
	}
	if n, err := testutil.GatherAndCount(reg, "cnbridged_tap_dropped_total"); err != nil || n != 1 {
		t.Fatalf("cnbridged_tap_dropped_total not registered: %d, %v", n, err)
	}
	// Now read: the lines that fit, plus markers that add up to the rest.
	sc := bufio.NewScanner(conn)
	var lines, reported uint64
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for lines+reported < total && sc.Scan() {
		var m struct {
			Type    string `json:"type"`
			Dropped uint64 `json:"dropped"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if m.Type == TypeDropped {
			reported += m.Dropped
		} else {
			lines++
		}
	}
	if lines+reported != total || float64(reported) != dropped {
		t.Errorf("got %d lines + %d reported dropped, want %d in all, %v dropped", lines, reported, total, dropped)
	}
}

func TestSocketMode(t *testing.T) {
	s, _ := startServer(t, 1)
	fi, err := os.Stat(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Addr()), ".*"))
	if len(matches) != 0 {
		t.Errorf("temporary socket names left: %v", matches)
	}
}

func TestLiveSocketNotStolen(t *testing.T) {
	s, _ := startServer(t, 1)
	_, err := Listen(ServerConfig{Path: s.Addr(), Mode: 0o600}, "h2", event.NewEncoder("h2"), zaptest.NewLogger(t))
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen = %v, want ErrInUse", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a dead daemon's file
	s, err := Listen(ServerConfig{Path: path, Mode: 0o600}, "h", event.NewEncoder("h"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
}

const helperEnv = "CNBRIDGED_TAP_DIAL_HELPER"

// dialHelper runs in a child started with setpriv as another user: exit
// 0 when it can connect, 3 on permission denied, 4 otherwise.
func dialHelper() int {
	c, err := net.Dial("unix", os.Getenv(helperEnv))
	switch {
	case err == nil:
		c.Close()
		return 0
	case errors.Is(err, os.ErrPermission):
		return 3
	}
	os.Stderr.WriteString(err.Error() + "\n")
	return 4
}

// TestNonRootRefused: the socket's permissions keep other users out
// (nobody, uid 65534), while its owner connects.
func TestNonRootRefused(t *testing.T) {
	cntest.NeedRoot(t, "runs a child as another user (setpriv)")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	s, _ := startServer(t, 1)
	// The test's temporary directories are 0700: let others reach the
	// socket so that only the socket's own mode decides.
	for d := filepath.Dir(s.Addr()); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	run := func(asNobody bool) int {
		args := []string{os.Args[0], "-test.run", "^$"}
		if asNobody {
			args = append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--"}, args...)
		}
		bin := args[0]
		if asNobody {
			bin = setpriv
		} else {
			args = args[1:]
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), helperEnv+"="+s.Addr())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == 4 {
				t.Logf("helper: %s", strings.TrimSpace(string(out)))
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return 0
	}
	if got := run(false); got != 0 {
		t.Fatalf("root could not connect: helper exit %d", got)
	}
	if got := run(true); got != 3 {
		t.Fatalf("uid 65534: helper exit %d, want 3 (permission denied)", got)
	}
}

// TestServerQueries: a client that sends a line gets its answer after the
// event lines it was already sent, no more event lines, and the end of
// the connection; tap clients beside it go on getting every line.
func TestServerQueries(t *testing.T) {
	reg := prometheus.NewRegistry()
	path := filepath.Join(t.TempDir(), "tap.sock")
	asked := make(chan string, 1)
	s, err := Listen(ServerConfig{Path: path, Mode: 0o600, ClientBuffer: 64, Metrics: NewMetrics(reg),
		Queries: func(_ context.Context, req []byte) []byte {
			asked <- string(req)
			return []byte(`{"type":"query_answer","answer":{"host":"h1"}}`)
		}}, "h1", event.NewEncoder("h1"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	tapLines := make(chan string, 64)
	tctx, tcancel := context.WithCancel(context.Background())
	tdone := make(chan error, 1)
	go func() { tdone <- ReadSocket(tctx, path, func(b []byte) error { tapLines <- string(b); return nil }) }()
	waitClients(t, s, 1)

	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitClients(t, s, 2)
	s.Write(execRecord(10)) // reaches both before the question
	if _, err := conn.Write([]byte("{\"query\":\"ps\"}\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-asked; got != `{"query":"ps"}` {
		t.Errorf("Queries got %q", got)
	}
	s.Write(execRecord(11)) // the tap client's only
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if n := len(lines); n == 0 || lines[n-1] != `{"type":"query_answer","answer":{"host":"h1"}}` || n > 2 {
		t.Fatalf("the query client read %q, want at most the first exec, then the answer, then the end", lines)
	}
	if len(lines) == 2 && !strings.Contains(lines[0], `"pid":10`) {
		t.Errorf("the line before the answer is %s, want the exec of 10", lines[0])
	}
	for _, pid := range []string{`"pid":10`, `"pid":11`} {
		if l := <-tapLines; !strings.Contains(l, pid) {
			t.Errorf("the tap client got %s, want %s", l, pid)
		}
	}
	tcancel()
	<-tdone
}
