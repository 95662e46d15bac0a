package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRestartOnPort: a server stopped and started again on its port is
// where its clients expect it, and JetStream is on when asked for.
func TestRestartOnPort(t *testing.T) {
	s := Run(t, JetStream(t.TempDir()))
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
	port := ClientPort(s)
	s.Shutdown()
	s.WaitForShutdown()
	s2 := Run(t, Port(port))
	if got := ClientPort(s2); got != port {
		t.Fatalf("restarted on port %d, want %d", got, port)
	}
	nc, err := nats.Connect(s2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if s2.JetStreamEnabled() {
		t.Error("JetStream enabled without JetStream()")
	}
}

// TestClusterNodeRestart: a stopped node comes back on its ports and
// rejoins.
func TestClusterNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := RunCluster(t, 3, t.TempDir())
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c.Stop(0)
	if c.Server(0) != nil {
		t.Fatal("node 0 still listed after Stop")
	}
	if err := c.Start(0); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(30*time.Second, "node 0 routed to its peers", func() bool { return c.Server(0).NumRoutes() >= 2 })
}
