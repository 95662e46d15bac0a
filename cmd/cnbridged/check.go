package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// Inode numbers of the initial namespaces (include/linux/proc_ns.h):
// fixed, so they identify the initial PID and user namespaces even when
// /proc/1/ns is unreadable or /proc/1 is a container's init.
const (
	initUserNSIno = 0xEFFFFFFD
	initPIDNSIno  = 0xEFFFFFFC
)

// checker prints one line per check: "ok", "warn" (runs, with a
// consequence) or "FAIL" (run would fail or deliver nothing), the last two
// with the fix.
type checker struct {
	out    io.Writer
	failed bool
}

func (c *checker) line(mark, what, detail, advice string) {
	fmt.Fprintf(c.out, "%-4s %-28s %s\n", mark, what, detail)
	if advice != "" {
		fmt.Fprintf(c.out, "     %-28s fix: %s\n", "", advice)
	}
}
func (c *checker) ok(what, detail string)           { c.line("ok", what, detail, "") }
func (c *checker) warn(what, detail, advice string) { c.line("warn", what, detail, advice) }
func (c *checker) fail(what, detail, advice string) {
	c.failed = true
	c.line("FAIL", what, detail, advice)
}

// nsInfo is what the namespace checks found.
type nsInfo struct {
	initialPID, initialUser bool
	netKnown, initialNet    bool // netKnown: compared with the host's
}

// cmdCheck is the canary: what this host, container and user can do with
// this config, each failure with its fix, and proof that process events
// flow. It returns 1 if any check failed.
func cmdCheck(cf configFlags, stdout io.Writer) int {
	c := &checker{out: stdout}
	cfg, err := config.Load(cf.options())
	if err != nil {
		c.fail("config", strings.ReplaceAll(err.Error(), "\n", "; "), "correct the config; `cnbridged validate` lists every problem")
		cfg = nil
	} else {
		src := cfg.Source
		if src == "" {
			src = "built-in default"
		}
		c.ok("config", src)
	}
	ns := checkNamespaces(c)
	checkConnector(c, ns)
	checkJoinRights(c, cfg, listener.ProbeJoin(), readInt("/proc/sys/net/core/rmem_max"))
	if cfg != nil {
		checkSocket(c, cfg, ns)
		checkSinks(c, cfg)
		checkMetrics(c, cfg.Metrics.Listen)
	}
	if c.failed {
		return 1
	}
	return 0
}

// nsIno reads the inode of /proc/PID/ns/NAME ("net:[4026531840]").
func nsIno(pid, name string) (uint64, error) {
	l, err := os.Readlink("/proc/" + pid + "/ns/" + name)
	if err != nil {
		return 0, err
	}
	i, j := strings.IndexByte(l, '['), strings.IndexByte(l, ']')
	if i < 0 || j < i {
		return 0, fmt.Errorf("unexpected link %q", l)
	}
	return strconv.ParseUint(l[i+1:j], 10, 64)
}

func checkNamespaces(c *checker) nsInfo {
	var ns nsInfo
	const pidAdvice = "run in the host PID namespace (docker --pid host, Kubernetes hostPID: true): the kernel sends process events only there"
	const userAdvice = "run in the initial user namespace (no user namespace remapping, not rootless): the kernel ignores subscriptions from others"
	if ino, err := nsIno("self", "pid"); err != nil {
		c.warn("pid namespace", "cannot read /proc/self/ns/pid: "+err.Error(), "")
		ns.initialPID = true // the subscription test decides
	} else if ns.initialPID = ino == initPIDNSIno; ns.initialPID {
		c.ok("pid namespace", "the initial one")
	} else {
		c.fail("pid namespace", fmt.Sprintf("pid:[%d] is not the initial one: no process events will arrive", ino), pidAdvice)
	}
	if ino, err := nsIno("self", "user"); err != nil {
		c.warn("user namespace", "cannot read /proc/self/ns/user: "+err.Error(), "")
		ns.initialUser = true
	} else if ns.initialUser = ino == initUserNSIno; ns.initialUser {
		c.ok("user namespace", "the initial one")
	} else {
		c.fail("user namespace", fmt.Sprintf("user:[%d] is not the initial one: the kernel ignores its subscription", ino), userAdvice)
	}
	// The initial network namespace has no fixed inode. The connector
	// registers /proc/net/connector only there, so its presence answers;
	// else compare with PID 1's when PID 1 is the host's init and
	// readable; else the subscription below decides (refused outside it).
	self, err1 := nsIno("self", "net")
	host, err2 := nsIno("1", "net")
	_, errConn := os.Stat("/proc/net/connector")
	switch {
	case errConn == nil:
		ns.netKnown, ns.initialNet = true, true
		c.ok("net namespace", "the initial one (/proc/net/connector exists only there)")
	case err1 != nil:
		c.warn("net namespace", "cannot read /proc/self/ns/net: "+err1.Error(), "")
	case !ns.initialPID:
		c.warn("net namespace", "cannot tell: no /proc/net/connector, and PID 1 here is not the host's init; the subscription test below decides", "")
	case err2 != nil:
		c.warn("net namespace", "cannot tell: no /proc/net/connector, and PID 1's is unreadable; the subscription test below decides", "")
	default:
		ns.netKnown, ns.initialNet = true, self == host
		if ns.initialNet {
			c.ok("net namespace", "the host's (PID 1's)")
		} else {
			c.fail("net namespace", fmt.Sprintf("net:[%d] is not the host's net:[%d]: the connector exists only in the initial network namespace", self, host),
				"use the host network (docker --network host, Kubernetes hostNetwork: true)")
		}
	}
	return ns
}

func checkConnector(c *checker, ns nsInfo) {
	b, err := os.ReadFile("/proc/net/connector")
	switch {
	case err != nil && ns.netKnown && !ns.initialNet:
		c.fail("connector", "/proc/net/connector absent in this network namespace", "use the host network (see net namespace)")
		return
	case err != nil && ns.netKnown:
		c.fail("connector", "/proc/net/connector: "+err.Error()+" in the host's network namespace", "a kernel with CONFIG_CONNECTOR")
		return
	case err != nil:
		c.fail("connector", "/proc/net/connector: "+err.Error(),
			"in a container: use the host network (the connector lives only in the initial network namespace); on a host: a kernel with CONFIG_CONNECTOR")
		return
	}
	ids := connectorIDs(b)
	c.ok("connector", "registered: "+strings.Join(ids, " "))
	if slices.Contains(ids, "1:1") {
		c.ok("process events", "cn_proc 1:1 registered (CONFIG_PROC_EVENTS)")
	} else {
		c.fail("process events", "1:1 not registered", "a kernel with CONFIG_PROC_EVENTS=y")
	}
}

// checkSocket opens the connector socket as run does, subscribes, compares
// the receive buffer with the configured one, and proves the flow: it
// starts a child and waits for its fork, exec and exit events.
func checkSocket(c *checker, cfg *config.Config, ns nsInfo) {
	groups := slices.Clone(cfg.Listener.Groups)
	if !slices.Contains(groups, listener.ProcGroup) {
		groups = append(groups, listener.ProcGroup) // for the flow test
	}
	l, err := listener.New(listener.Config{Groups: groups, ReceiveBufferBytes: cfg.Listener.ReceiveBufferBytes, HandshakeTimeout: cfg.Listener.HandshakeTimeout}, zap.NewNop())
	if err != nil {
		c.fail("connector socket", err.Error(), socketAdvice(err))
		return
	}
	defer l.Close()
	c.ok("connector socket", fmt.Sprintf("joined groups %v", groups))
	want := cfg.Listener.ReceiveBufferBytes
	if got, err := l.ReceiveBuffer(); err != nil {
		c.warn("receive buffer", err.Error(), "")
	} else if got /= 2; got < want {
		c.warn("receive buffer", fmt.Sprintf("got %d bytes of the %d configured (net.core.rmem_max %d caps it without CAP_NET_ADMIN)", got, want, readInt("/proc/sys/net/core/rmem_max")),
			"grant CAP_NET_ADMIN, or raise net.core.rmem_max to at least listener.receive_buffer_bytes, or bursts are lost")
	} else {
		c.ok("receive buffer", fmt.Sprintf("%d bytes, as configured", got))
	}

	events := make(chan cnmsg.ProcEvent, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(dgs []listener.Datagram, _ time.Time) {
			for _, d := range dgs {
				m, err := cnmsg.Decode(d.Data)
				if err != nil || d.Sender != 0 || !m.ID.IsProc() {
					continue
				}
				if ev, err := cnmsg.DecodeProc(m.Data); err == nil {
					select {
					case events <- ev:
					default:
					}
				}
			}
		})
	}()
	defer func() { cancel(); <-done }()
	if err := l.Subscribe(ctx); err != nil {
		advice := socketAdvice(err)
		if errors.Is(err, listener.ErrNoAck) && ns.initialPID && ns.initialUser {
			advice = "the namespaces look right: check that CONFIG_PROC_EVENTS is on and no seccomp/LSM policy blocks netlink"
		}
		c.fail("subscription", err.Error(), advice)
		return
	}
	c.ok("subscription", "acknowledged by the kernel")
	checkFlow(c, events)
}

// socketAdvice says what to do about a socket or subscription error.
func socketAdvice(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "use the host network (docker --network host, Kubernetes hostNetwork: true): the connector exists only in the initial network namespace"
	case errors.Is(err, listener.ErrNoAck):
		return "run in the host PID namespace (hostPID: true, --pid host) and the initial user namespace"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "grant CAP_NET_ADMIN, or check the seccomp/LSM policy"
	case errors.Is(err, syscall.EPROTONOSUPPORT):
		return "a kernel with CONFIG_CONNECTOR"
	}
	return ""
}

// checkFlow starts a child and waits for its fork, exec and exit events.
func checkFlow(c *checker, events <-chan cnmsg.ProcEvent) {
	start := time.Now()
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		c.warn("events flow", "cannot start /bin/true to test: "+err.Error(), "")
		return
	}
	pid := uint32(cmd.Process.Pid)
	cmd.Wait()
	seen := map[cnmsg.What]bool{}
	deadline := time.After(5 * time.Second)
	for !(seen[cnmsg.ProcFork] && seen[cnmsg.ProcExec] && seen[cnmsg.ProcExit]) {
		select {
		case ev := <-events:
			switch {
			case ev.What == cnmsg.ProcFork && ev.ChildTGID == pid,
				ev.What == cnmsg.ProcExec && ev.TGID == pid,
				ev.What == cnmsg.ProcExit && ev.TGID == pid:
				seen[ev.What] = true
			}
		case <-deadline:
			var missing []string
			for _, w := range []cnmsg.What{cnmsg.ProcFork, cnmsg.ProcExec, cnmsg.ProcExit} {
				if !seen[w] {
					missing = append(missing, w.String())
				}
			}
			c.fail("events flow", fmt.Sprintf("child %d: no %s event within 5s although the subscription was acknowledged", pid, strings.Join(missing, ", ")),
				"run in the host PID namespace; if it is, the kernel drops process events (see dmesg)")
			return
		}
	}
	c.ok("events flow", fmt.Sprintf("child %d: fork, exec and exit seen in %s", pid, time.Since(start).Round(time.Millisecond)))
}

func checkSinks(c *checker, cfg *config.Config) {
	for _, name := range cfg.SinkNames() {
		s := cfg.Sinks[name]
		switch {
		case s.File() != nil:
			path := s.File().Path
			if err := creatable(path); err != nil {
				c.fail("sink "+name, err.Error(), fmt.Sprintf("create %s writable by uid %d, or point sinks.%s.path elsewhere", filepath.Dir(path), os.Geteuid(), name))
			} else {
				c.ok("sink "+name, path+" writable")
			}
		case s.NATS() != nil:
			checkNATS(c, name, s.NATS())
		default:
			c.ok("sink "+name, s.Type)
		}
	}
}

// creatable reports whether the file sink can open path for appending:
// an existing regular file this user may write, or a missing one whose
// nearest existing ancestor directory this user may write and search.
func creatable(path string) error {
	st, err := os.Stat(path)
	if err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		if err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS); err != nil {
			return fmt.Errorf("%s: not writable: %w", path, err)
		}
		return nil
	}
	dir := filepath.Dir(path)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s: cannot create: %s is not a directory", path, dir)
			}
			if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
				return fmt.Errorf("%s: cannot create in %s: %w", path, dir, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%s: no existing directory above it", path)
		}
		dir = parent
	}
}

// checkNATS connects to each server with the sink's credentials and TLS
// (sinks.AuthOptions: the same options and secret-file checks) and
// authenticates.
func checkNATS(c *checker, name string, n *sinks.NATSSinkConfig) {
	auth, err := sinks.AuthOptions(n.NATSConfig(name, ""))
	if err != nil {
		c.fail("sink "+name, err.Error(), "correct sinks."+name+" (run refuses to start this sink as it is)")
		return
	}
	opts := append([]nats.Option{nats.Name("cnbridged check"), nats.Timeout(3 * time.Second), nats.NoReconnect()}, auth...)
	for _, u := range strings.Split(n.URL, ",") {
		u = strings.TrimSpace(u)
		nc, err := nats.Connect(u, opts...)
		if err != nil {
			advice := "start the server or correct sinks." + name + ".url (cnbridged runs meanwhile, reconnecting)"
			if strings.Contains(strings.ToLower(err.Error()), "authorization") || strings.Contains(strings.ToLower(err.Error()), "authentication") {
				advice = "correct the credentials of sinks." + name + " (user/password, token, nkey_seed_file or creds_file)"
			}
			c.fail("sink "+name, sinks.RedactURLs(u)+": "+err.Error(), advice)
			continue
		}
		c.ok("sink "+name, sinks.RedactURLs(u)+" reachable, authenticated (server "+nc.ConnectedServerName()+")")
		nc.Close()
	}
}

// checkMetrics binds the metrics address as run would.
func checkMetrics(c *checker, addr string) {
	if addr == "" {
		c.ok("metrics", "disabled (metrics.listen is empty)")
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.fail("metrics", addr+": "+err.Error(), "stop what holds the port (another cnbridged?) or set metrics.listen to a free address")
		return
	}
	ln.Close()
	c.ok("metrics", addr+" bindable")
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// connectorIDs lists "idx:val" entries of /proc/net/connector.
func connectorIDs(b []byte) []string {
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.Contains(f[1], ":") {
			ids = append(ids, f[1])
		}
	}
	return ids
}
