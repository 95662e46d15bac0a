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

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/daemon"
	"github.com/cnbridged/cnbridged/internal/filelock"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/statefile"
	"github.com/cnbridged/cnbridged/internal/tap"
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
		checkTap(c, cfg)
		checkQuery(c, cfg)
		checkStateDir(c, cfg.StateDir)
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
		l.Run(ctx, func(dgs []cnmsg.Datagram, _ time.Time) {
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

// checkSinks checks each sink's destination the way its type knows how
// (sinks.Prober: a file sink's file can be created, a NATS sink's servers
// let it in).
func checkSinks(c *checker, cfg *config.Config) {
	for _, name := range cfg.SinkNames() {
		s := cfg.Sinks[name]
		p, ok := s.Settings.(sinks.Prober)
		if !ok {
			c.ok("sink "+name, s.Type)
			continue
		}
		for _, r := range p.Probe(context.Background(), name) {
			switch {
			case r.Try != nil:
				// A path the sink would create: tried as run would,
				// and what the try created removed again.
				if err := probe(r.Path, r.Try); err != nil {
					c.fail("sink "+name, err.Error(), fileAdvice(err, r.Path, r.Advice))
				} else {
					c.ok("sink "+name, r.Detail)
				}
			case r.OK:
				c.ok("sink "+name, r.Detail)
			default:
				c.fail("sink "+name, r.Detail, r.Advice)
			}
		}
	}
}

// checkQuery connects to the query service's servers with its
// credentials, as a NATS sink's are checked (run starts without them and
// reconnects; questions go unanswered meanwhile).
func checkQuery(c *checker, cfg *config.Config) {
	if !cfg.Query.Enabled() {
		c.ok("query", "no NATS service (query.nats.url is empty); the tap socket answers cnbridged query")
		return
	}
	for _, r := range cfg.Query.NATS.Probe(context.Background(), "query.nats", "the query service") {
		if r.OK {
			c.ok("query", r.Detail)
		} else {
			c.fail("query", r.Detail, r.Advice)
		}
	}
}

// checkTap binds the tap socket as run does (run logs an error and goes
// on without the live view when it cannot).
func checkTap(c *checker, cfg *config.Config) {
	path := cfg.Tap.Socket
	if path == "" {
		c.ok("tap socket", "disabled (tap.socket is empty)")
		return
	}
	err := probe(path, func() error { return tap.Probe(path, os.FileMode(cfg.Tap.Mode)) })
	switch {
	case err == nil:
		c.ok("tap socket", fmt.Sprintf("%s: bound as uid %d", path, os.Geteuid()))
	case errors.Is(err, tap.ErrInUse):
		c.fail("tap socket", err.Error()+": run would go on without the live view",
			"stop the process that serves it (another cnbridged?), or set tap.socket elsewhere")
	default:
		c.fail("tap socket", err.Error()+": run would go on without the live view",
			fileAdvice(err, path, `set tap.socket elsewhere (systemd: RuntimeDirectory=cnbridged makes /run/cnbridged), or "" to run without it`))
	}
}

// checkStateDir takes the state directory as run does: created, locked,
// a state file written (run goes on without a restart trace when it
// cannot).
func checkStateDir(c *checker, dir string) {
	if dir == "" {
		c.ok("state_dir", "disabled (state_dir is empty): no restart trace, no gap record after a restart")
		return
	}
	err := probe(filepath.Join(dir, daemon.StateLockName), func() error { return daemon.ProbeStateDir(dir) })
	var held *filelock.HeldError
	switch {
	case err == nil:
		c.ok("state_dir", fmt.Sprintf("%s: locked and written as uid %d", dir, os.Geteuid()))
	case errors.As(err, &held):
		c.fail("state_dir", dir+": "+err.Error()+": run would go on without a restart trace",
			fmt.Sprintf("stop the cnbridged with pid %d, or give this one a state_dir of its own", held.PID))
	default:
		c.fail("state_dir", dir+": "+err.Error()+": run would go on without a restart trace",
			fileAdvice(err, filepath.Join(dir, statefile.StateName), `set state_dir elsewhere (systemd: StateDirectory=cnbridged makes /var/lib/cnbridged), or "" to run without a restart trace`))
	}
}

// probe runs try, which does to path what run does (creating it and the
// directories above it when missing), then removes what it created:
// check leaves the host as it found it.
func probe(path string, try func() error) error {
	var created []string // deepest first
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		created = append(created, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	err := try()
	for _, p := range created {
		os.Remove(p) // only what is still empty, for a directory
	}
	return err
}

// fileAdvice says what to do about a path run cannot create or open;
// other is the config change that avoids it.
func fileAdvice(err error, path, other string) string {
	var held *filelock.HeldError
	if errors.As(err, &held) {
		if held.PID != 0 {
			return fmt.Sprintf("stop the process that writes it (pid %d), or %s", held.PID, other)
		}
		return "stop the process that writes it, or " + other
	}
	dir := filepath.Dir(path)
	// The nearest directory that exists says where the path lives.
	near := dir
	for {
		if _, err := os.Stat(near); err == nil || filepath.Dir(near) == near {
			break
		}
		near = filepath.Dir(near)
	}
	if fs := pseudoFS(near); fs != "" {
		return fmt.Sprintf("%s is on %s, where no files can be created: %s, on a disk", near, fs, other)
	}
	if errors.Is(err, syscall.EROFS) {
		return fmt.Sprintf("%s is on a read-only filesystem: mount a writable volume there, or %s", near, other)
	}
	if st, err := os.Stat(near); err == nil && !st.IsDir() {
		return fmt.Sprintf("create %s writable by uid %d (%s is not a directory), or %s", dir, os.Geteuid(), near, other)
	}
	return fmt.Sprintf("create %s writable by uid %d, or %s", dir, os.Geteuid(), other)
}

// pseudoFS names the kernel filesystem dir is on when it holds no
// ordinary files (/proc, /sys and their kin), else "".
func pseudoFS(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return ""
	}
	switch int64(st.Type) {
	case unix.PROC_SUPER_MAGIC:
		return "procfs"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.CGROUP2_SUPER_MAGIC, unix.CGROUP_SUPER_MAGIC:
		return "cgroupfs"
	case unix.DEBUGFS_MAGIC:
		return "debugfs"
	case unix.TRACEFS_MAGIC:
		return "tracefs"
	case unix.SECURITYFS_MAGIC:
		return "securityfs"
	case unix.BPF_FS_MAGIC:
		return "bpffs"
	}
	return ""
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
