package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// cmdCheck is a preflight: can this host or container run cnbridged with
// this config? It prints one line per check and exits 1 if any failed.
func cmdCheck(cf configFlags, stdout io.Writer) int {
	failed := false
	line := func(ok bool, what, detail string) {
		mark := "ok  "
		if !ok {
			mark, failed = "FAIL", true
		}
		fmt.Fprintf(stdout, "%s %-28s %s\n", mark, what, detail)
	}
	warn := func(what, detail string) { fmt.Fprintf(stdout, "warn %-28s %s\n", what, detail) }

	cfg, err := config.Load(cf.options())
	if err != nil {
		line(false, "config", strings.ReplaceAll(err.Error(), "\n", "; "))
		cfg = nil
	} else {
		src := cfg.Source
		if src == "" {
			src = "built-in default"
		}
		line(true, "config", src)
	}

	ids, err := os.ReadFile("/proc/net/connector")
	switch {
	case err != nil:
		line(false, "connector present", "/proc/net/connector: "+err.Error()+" (kernel without CONFIG_CONNECTOR?)")
	default:
		line(true, "connector present", "registered: "+strings.Join(connectorIDs(ids), " "))
		if !slices.Contains(connectorIDs(ids), "1:1") {
			line(false, "process events", "1:1 not registered (CONFIG_PROC_EVENTS off)")
		}
	}

	// Namespaces: compare with PID 1's, when we can see it.
	for _, ns := range []string{"net", "pid", "user"} {
		self, err1 := os.Readlink("/proc/self/ns/" + ns)
		init, err2 := os.Readlink("/proc/1/ns/" + ns)
		switch {
		case err1 != nil || err2 != nil:
			warn(ns+" namespace", "cannot compare with PID 1's")
		case self == init:
			line(true, ns+" namespace", "same as PID 1 ("+self+")")
		default:
			// In a container PID 1 is the container's own init.
			warn(ns+" namespace", self+" differs from PID 1's "+init+"; the subscription test below decides")
		}
	}

	capOK := hasCapNetAdmin()
	line(capOK, "CAP_NET_ADMIN", map[bool]string{true: "held", false: "missing: joining groups and subscribing need it"}[capOK])

	want := config.DefaultReceiveBufferBytes
	if cfg != nil {
		want = cfg.Listener.ReceiveBufferBytes
	}
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		detail := fmt.Sprintf("rmem_max %d, configured %d", max, want)
		if max < want {
			detail += " (fine as root or with CAP_NET_ADMIN: SO_RCVBUFFORCE ignores rmem_max)"
		}
		line(max >= want || capOK, "receive buffer", detail)
	}

	if capOK && cfg != nil {
		l, err := listener.New(listener.Config{Groups: cfg.Listener.Groups, ReceiveBufferBytes: cfg.Listener.ReceiveBufferBytes, HandshakeTimeout: cfg.Listener.HandshakeTimeout}, zap.NewNop())
		if err != nil {
			line(false, "connector socket", err.Error())
		} else {
			line(true, "connector socket", fmt.Sprintf("joined groups %v", cfg.Listener.Groups))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { l.Run(ctx, func([]listener.Datagram, time.Time) {}); close(done) }()
			if slices.Contains(cfg.Listener.Groups, listener.ProcGroup) {
				if err := l.Subscribe(ctx); err != nil {
					line(false, "process events subscription", err.Error())
				} else {
					line(true, "process events subscription", "acknowledged by the kernel")
				}
			}
			cancel()
			<-done
			l.Close()
		}
	}

	if cfg != nil {
		for _, name := range cfg.SinkNames() {
			s := cfg.Sinks[name]
			switch s.Type {
			case "file":
				dir := s.Path[:strings.LastIndexByte(s.Path, '/')+1]
				if dir == "" {
					dir = "."
				}
				err := unix.Access(dir, unix.W_OK)
				if os.IsNotExist(err) {
					err = nil // created at start
				}
				line(err == nil, "sink "+name, detailErr(s.Path, err))
			case "nats":
				for _, u := range strings.Split(s.URL, ",") {
					addr := hostPort(strings.TrimSpace(u))
					c, err := net.DialTimeout("tcp", addr, 2*time.Second)
					if err == nil {
						c.Close()
					}
					line(err == nil, "sink "+name, detailErr(addr+" reachable", err))
				}
			default:
				line(true, "sink "+name, s.Type)
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}

func detailErr(what string, err error) string {
	if err != nil {
		return what + ": " + err.Error()
	}
	return what
}

func hostPort(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		if pu.Port() == "" {
			return net.JoinHostPort(pu.Hostname(), "4222")
		}
		return pu.Host
	}
	return u
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
