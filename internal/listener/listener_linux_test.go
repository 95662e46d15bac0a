//go:build linux

package listener

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// Groups and ids of this package's tests; other packages use others.
const (
	groupBatch = 25
	idxTest    = 0x7e58
)

func TestMain(m *testing.M) {
	if os.Getenv("CNBRIDGED_TEST_NOACK") == "1" {
		os.Exit(noAckChild())
	}
	if os.Getenv("CNBRIDGED_TEST_JOIN") == "1" {
		os.Exit(joinChild())
	}
	goleak.VerifyTestMain(m)
}

// rootReason is why these tests need root (cntest.NeedRoot).
const rootReason = "joins connector multicast groups (CAP_NET_ADMIN)"

// collector runs a listener and collects datagrams of one id.
type collector struct {
	mu   sync.Mutex
	got  []cnmsg.Datagram
	id   cnmsg.ID
	done chan error
	stop context.CancelFunc
}

func run(t *testing.T, l *Listener, id cnmsg.ID) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{id: id, done: make(chan error, 1), stop: cancel}
	go func() {
		c.done <- l.Run(ctx, func(batch []cnmsg.Datagram, _ time.Time) {
			for _, d := range batch {
				m, err := cnmsg.Decode(d.Data)
				if err != nil || m.ID != id {
					continue // not this test's traffic
				}
				c.mu.Lock()
				c.got = append(c.got, cnmsg.Datagram{Data: append([]byte(nil), d.Data...), Sender: d.Sender})
				c.mu.Unlock()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		l.Close()
	})
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestSubscribeAcked(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	l, err := New(Config{Groups: []int{ProcGroup}, ReceiveBufferBytes: 1 << 20}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, l, cnmsg.ID{Idx: 1, Val: 1})
	if l.Subscribed() {
		t.Fatal("Subscribed before Subscribe")
	}
	if err := l.Subscribe(context.Background()); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if !l.Subscribed() {
		t.Fatal("not Subscribed after an acknowledged Subscribe")
	}
	// The filter form (Linux ≥ 6.6) is accepted on the live socket, and
	// going back to every event is acknowledged again.
	if err := l.SetProcMask(context.Background(), cnmsg.ProcExec); err != nil {
		t.Fatalf("SetProcMask(exec): %v", err)
	}
	if err := l.SetProcMask(context.Background(), cnmsg.ProcAll); err != nil {
		t.Fatalf("SetProcMask(all): %v", err)
	}
	got, err := l.ReceiveBuffer()
	if err != nil || got < 1<<20 {
		t.Errorf("ReceiveBuffer got %d, %v; want >= %d", got, err, 1<<20)
	}
}

// TestBatchAndSender: synthetic multicasts arrive with the emitter's port id
// (not 0), in order, several per recvmmsg call.
func TestBatchAndSender(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	l, err := New(Config{Groups: []int{groupBatch}, ReceiveBufferBytes: 8 << 20, BatchSize: 32}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	id := cnmsg.ID{Idx: idxTest, Val: groupBatch}
	c := run(t, l, id)
	em, err := NewEmitter()
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	port := em.PortID()
	if port == 0 {
		t.Fatal("emitter has port id 0")
	}
	const n = 2000
	var buf []byte
	for i := 0; i < n; i++ {
		buf = cnmsg.AppendMessage(buf[:0], 0, 0, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte("x"))
		if err := em.Emit(buf, groupBatch); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) != n {
		t.Fatalf("got %d datagrams, want %d", len(c.got), n)
	}
	for i, d := range c.got {
		m, _ := cnmsg.Decode(d.Data)
		if d.Sender != port || m.Seq != uint32(i) {
			t.Fatalf("datagram %d: sender %d seq %d, want sender %d seq %d", i, d.Sender, m.Seq, port, i)
		}
	}
	st := l.Stats()
	if st.Syscalls >= st.Received {
		t.Logf("note: no batching happened (%d calls for %d datagrams)", st.Syscalls, st.Received)
	}
	if drops, err := l.Drops(); err != nil || drops != 0 {
		t.Errorf("Drops got %d, %v; want 0", drops, err)
	}
}

func TestSetGroups(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	l, err := New(Config{Groups: []int{26}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.SetGroups([]int{27, 28}); err != nil {
		t.Fatal(err)
	}
	got := l.Groups()
	if len(got) != 2 || got[0] != 27 || got[1] != 28 {
		t.Errorf("Groups got %v, want [27 28]", got)
	}
}

// TestNoAckOutsideHostPIDNamespace runs the handshake in a new PID
// namespace, where the process connector ignores the subscription: start-up
// must fail with ErrNoAck instead of waiting forever.
func TestNoAckOutsideHostPIDNamespace(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	cmd := exec.Command(unshare, "--pid", "--fork", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CNBRIDGED_TEST_NOACK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if string(out) != "no-ack\n" {
		t.Fatalf("child got %q, want %q", out, "no-ack\n")
	}
}

func noAckChild() int {
	l, err := New(Config{Groups: []int{ProcGroup}, HandshakeTimeout: 500 * time.Millisecond}, zapNop())
	if err != nil {
		os.Stdout.WriteString("new: " + err.Error() + "\n")
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, func([]cnmsg.Datagram, time.Time) {}) }()
	err = l.Subscribe(ctx)
	cancel()
	<-done
	l.Close()
	if errors.Is(err, ErrNoAck) {
		os.Stdout.WriteString("no-ack\n")
		return 0
	}
	os.Stdout.WriteString("subscribe: " + errString(err) + "\n")
	return 1
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
