package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// TestLeaf: a leaf node connected to a cluster carries messages both ways,
// and its clients reach the cluster's JetStream through the cluster's
// domain.
func TestLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := RunCluster(t, 3, t.TempDir(), Domain("hub"))
	leaf := Leaf(t, c.LeafURLs())
	lnc, err := nats.Connect(leaf.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	hnc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	sub, _ := lnc.SubscribeSync("to.leaf")
	lnc.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hnc.Publish("to.leaf", []byte("x"))
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing published on the cluster reached the leaf's subscriber")
		}
	}
	js, _ := jetstream.NewWithDomain(lnc, "hub")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "from_leaf", Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("a key-value bucket created from the leaf: %v", err)
	}
	hjs, _ := jetstream.New(hnc)
	if _, err := hjs.KeyValue(ctx, "from_leaf"); err != nil {
		t.Errorf("the cluster does not have the leaf's bucket: %v", err)
	}
}
