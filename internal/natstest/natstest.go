// Package natstest runs real nats-server instances in-process, on
// loopback, for tests and the load harness: one server (optionally with
// JetStream), restarted on its port to simulate outages, or a JetStream
// cluster whose nodes can be stopped and restarted. Model: nats-server's
// test/test.go RunServer (port -1, no logging, no signal handlers).
package natstest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Option adjusts a server's options before it starts.
type Option func(*server.Options)

// Port makes the server listen on port (to restart it where its clients
// expect it). Without it the server takes a free port.
func Port(port int) Option { return func(o *server.Options) { o.Port = port } }

// JetStream enables JetStream with its store in dir.
func JetStream(dir string) Option {
	return func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
}

// Domain sets the server's JetStream domain.
func Domain(d string) Option { return func(o *server.Options) { o.JetStreamDomain = d } }

// Options returns the options every server starts from: loopback, a free
// port, no logging, no signal handlers.
func Options(opts ...Option) *server.Options {
	o := &server.Options{
		Host:                  "127.0.0.1",
		Port:                  -1,
		NoLog:                 true,
		NoSigs:                true,
		MaxControlLine:        4096,
		DisableShortFirstPing: true,
	}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	return o
}

// Start starts a server with o and waits until it accepts connections.
func Start(o *server.Options) (*server.Server, error) {
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats-server: not ready for connections within 20s")
	}
	return s, nil
}

// Run starts a server for a test and shuts it down when the test ends
// (tests that stop it earlier may: Shutdown is idempotent).
func Run(t testing.TB, opts ...Option) *server.Server {
	t.Helper()
	s, err := Start(Options(opts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// ClientPort returns the port a server accepts clients on.
func ClientPort(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int { return FreePorts(t, 1)[0] }

// FreePorts returns n distinct loopback ports that were free a moment ago
// (servers that restart need fixed ones).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Leaf runs, for a test, a leaf node server that connects to hubs (the
// leaf node URLs of a hub or cluster, LeafURLs), and waits until it has
// connected. It is shut down when the test ends.
func Leaf(t testing.TB, hubs []string, opts ...Option) *server.Server {
	t.Helper()
	o := Options(opts...)
	var urls []*url.URL
	for _, h := range hubs {
		u, err := url.Parse(h)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
	}
	o.LeafNode.Remotes = append(o.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: urls})
	o.LeafNode.ReconnectInterval = 100 * time.Millisecond
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	deadline := time.Now().Add(20 * time.Second)
	for s.NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leaf node %s: not connected to %v after 20s", s.Name(), hubs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// Cluster is a JetStream cluster of embedded servers on fixed loopback
// ports, so that a stopped node comes back where its peers and clients
// expect it, with its store. Every node accepts leaf nodes (LeafURLs).
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	mu      sync.Mutex
	servers []*server.Server // nil while stopped
}

// RunCluster starts an n-node JetStream cluster with its stores under dir
// and opts applied to every node, and waits until it has a meta leader. It
// is shut down when the test ends.
func RunCluster(t testing.TB, n int, dir string, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, servers: make([]*server.Server, n)}
	ports := FreePorts(t, 3*n)
	routes, leafs := ports[n:2*n], ports[2*n:]
	for i := range n {
		o := Options(Port(ports[i]), JetStream(filepath.Join(dir, fmt.Sprint("n", i))))
		o.ServerName = fmt.Sprint("n", i)
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", leafs[i]
		for _, f := range opts {
			f(o)
		}
		o.Cluster = server.ClusterOpts{Name: "cn", Host: "127.0.0.1", Port: routes[i]}
		for j, p := range routes {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
		c.opts = append(c.opts, o)
	}
	t.Cleanup(c.Shutdown)
	// Started together: a clustered JetStream node is ready for clients
	// only once it has found its peers.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Start(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(30*time.Second, "a JetStream meta leader", func() bool {
		for i := range c.opts {
			if s := c.Server(i); s != nil && s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return c
}

// URLs returns every node's client URL, comma-separated.
func (c *Cluster) URLs() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// LeafURLs returns every node's leaf node URL.
func (c *Cluster) LeafURLs() []string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats-leaf://127.0.0.1:%d", o.LeafNode.Port))
	}
	return urls
}

// Size returns the number of nodes.
func (c *Cluster) Size() int { return len(c.opts) }

// Server returns node i, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Stop shuts node i down. Any goroutine may call it.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Start starts node i again (or for the first time) on its ports, with
// its store; a running node is left alone. Any goroutine may call it.
func (c *Cluster) Start(i int) error {
	c.mu.Lock()
	running := c.servers[i] != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	o := *c.opts[i] // the server keeps and changes its options: a copy per run
	s, err := Start(&o)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.opts {
		c.Stop(i)
	}
}

// StreamLeader returns the node that leads stream in the global account,
// or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i := range c.opts {
		if s := c.Server(i); s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitFor polls ok until it holds, failing the test after d.
func (c *Cluster) WaitFor(d time.Duration, what string, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
