package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// TestCheck runs `cnbridged check` in bad environments and on this host:
// each gives its verdict (exit code, the FAIL or warn line) and the advice.
func TestCheck(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux): %v", tool, err)
		}
	}
	bin := daemonBinary(t)
	dir, err := os.MkdirTemp("", "cnbridged-check-") // not t.TempDir: uid 65534 reads the configs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := func(name, body string) string {
		p := filepath.Join(dir, name)
		// No tap socket or restart trace: the host's defaults are not
		// this test's (TestCheckTriesWhatRunDoes checks them).
		body += "tap:\n  socket: \"\"\nstate_dir: \"\"\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A receive buffer above net.core.rmem_max: only CAP_NET_ADMIN gets it.
	rmem := readInt("/proc/sys/net/core/rmem_max")
	if rmem <= 0 || 2*rmem > 1<<30 {
		t.Skipf("net.core.rmem_max %d: cannot configure a receive buffer above it", rmem)
	}
	healthy := conf("healthy.yaml", fmt.Sprintf("listener:\n  receive_buffer_bytes: %d\n", 2*rmem)+"metrics:\n  listen: \"\"\nsinks:\n  out:\n    type: file\n    path: "+filepath.Join(dir, "out", "events.jsonl")+"\nroutes:\n  - match: \"1.1\"\n    sinks: [out]\n")
	unwritable := conf("unwritable.yaml", "metrics:\n  listen: \"\"\nsinks:\n  out:\n    type: file\n    path: "+filepath.Join(notDir, "events.jsonl")+"\nroutes:\n  - match: \"1.1\"\n    sinks: [out]\n")
	stdout := conf("stdout.yaml", fmt.Sprintf("listener:\n  receive_buffer_bytes: %d\n", 2*rmem)+"metrics:\n  listen: \"\"\nsinks:\n  out:\n    type: stdout\nroutes:\n  - match: \"1.1\"\n    sinks: [out]\n")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	unpriv := []string{"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"}
	// Without CAP_NET_ADMIN, what check must say depends on this kernel:
	// ask it (listener.TestProbeJoin holds the probe to what an
	// unprivileged process gets).
	noCapWant := []string{"FAIL sink out", "permission denied", "fix: create"} // the sink's directory is root's
	switch r := listener.ProbeJoin(); r.Unprivileged {
	case listener.JoinAllowed:
		noCapWant = append(noCapWant, "warn CAP_NET_ADMIN", "subscribing works", "lets sockets without CAP_NET_ADMIN join",
			"warn receive buffer", "caps it without CAP_NET_ADMIN", "ok   subscription", "ok   events flow")
	case listener.JoinRefused:
		noCapWant = append(noCapWant, "FAIL CAP_NET_ADMIN", "lets only CAP_NET_ADMIN join", "fix: grant CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN",
			"FAIL connector socket", "operation not permitted")
	default:
		t.Fatalf("cannot tell whether this kernel lets sockets without CAP_NET_ADMIN join: %+v", r)
	}
	tests := []struct {
		name string
		cmd  []string
		code int
		want []string // lines (or parts of lines) the output must have
	}{
		{"healthy host: the canary passes", []string{bin, "check", "-c", healthy}, 0, []string{
			"ok   subscription", "ok   events flow", "fork, exec and exit seen", "ok   receive buffer",
			"ok   CAP_NET_ADMIN                held: this kernel",
		}},
		{"new network namespace", []string{"unshare", "-n", bin, "check", "-c", healthy}, 1, []string{
			"FAIL subscription", "connection refused", "fix: use the host network",
		}},
		{"new PID namespace", []string{"unshare", "-p", "-f", "--mount-proc", bin, "check", "-c", healthy}, 1, []string{
			"FAIL pid namespace", "is not the initial one", "fix: run in the host PID namespace",
			"FAIL subscription", "did not acknowledge",
		}},
		{"uid 65534 without capabilities", append(append(unpriv, "--inh-caps=-all"), bin, "check", "-c", healthy), 1, noCapWant},
		{"uid 65534 with CAP_NET_ADMIN", append(append(unpriv, "--inh-caps=+net_admin", "--ambient-caps=+net_admin"), bin, "check", "-c", stdout), 0, []string{
			"ok   CAP_NET_ADMIN", "ok   receive buffer", "ok   subscription", "ok   events flow",
		}},
		{"metrics port taken", []string{bin, "check", "-c", healthy, "--set", "metrics.listen=" + taken.Addr().String()}, 1, []string{
			"FAIL metrics", "address already in use", "fix: stop what holds the port",
		}},
		{"sink path not creatable", []string{bin, "check", "-c", unwritable}, 1, []string{
			"FAIL sink out", "is not a directory", "fix: create " + notDir,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(tt.cmd[0], tt.cmd[1:]...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("%v: %v", tt.cmd, err)
			}
			if code != tt.code {
				t.Errorf("exit got %d, want %d\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCheckNATS: check connects to a NATS sink's servers with its
// credentials: wrong ones fail with the fix, right ones pass.
func TestCheckNATS(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Username: "cn", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer s.Shutdown()
	for _, tt := range []struct {
		password string
		code     int
		want     string
	}{
		{"wrong", 1, "fix: correct the credentials of sinks.bus"},
		{"right", 0, "reachable, authenticated"},
	} {
		var out bytes.Buffer
		code := run([]string{"check", "--set", "metrics.listen=", "--set", "tap.socket=", "--set", "state_dir=",
			"--set", "sinks.bus.type=nats", "--set", "sinks.bus.url=" + s.ClientURL(),
			"--set", "sinks.bus.user=cn", "--set", "sinks.bus.password=" + tt.password}, &out, &out)
		if code != tt.code || !strings.Contains(out.String(), tt.want) {
			t.Errorf("password %s: exit %d, want %d with %q:\n%s", tt.password, code, tt.code, tt.want, out.String())
		}
	}
	// The query service's connection is checked the same way.
	for _, tt := range []struct {
		password string
		code     int
		want     string
	}{
		{"wrong", 1, "fix: correct the credentials of query.nats"},
		{"right", 0, "ok   query"},
	} {
		var out bytes.Buffer
		code := run([]string{"check", "--set", "metrics.listen=", "--set", "tap.socket=", "--set", "state_dir=",
			"--set", "query.nats.url=" + s.ClientURL(), "--set", "query.nats.user=cn", "--set", "query.nats.password=" + tt.password}, &out, &out)
		if code != tt.code || !strings.Contains(out.String(), tt.want) {
			t.Errorf("query password %s: exit %d, want %d with %q:\n%s", tt.password, code, tt.code, tt.want, out.String())
		}
	}
}
