package listener

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// groupWake is TestWake's group: the connector's last one, which no other
// test sends to.
const groupWake = 32

// TestWake: each Wake makes Run call its handler once with no datagrams
// although the socket is quiet; Run goes on reading afterwards (a message
// sent after the wakes arrives), and a stop right after a Wake ends Run.
func TestWake(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	l, err := New(Config{Groups: []int{groupWake}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id := cnmsg.ID{Idx: idxTest, Val: groupWake}
	empty, data := make(chan struct{}, 16), make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(batch []cnmsg.Datagram, _ time.Time) {
			if len(batch) == 0 {
				empty <- struct{}{}
			}
			for _, d := range batch {
				if m, err := cnmsg.Decode(d.Data); err == nil && m.ID == id {
					data <- struct{}{}
				}
			}
		})
	}()
	within := func(c chan struct{}, what string) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s within 5 s", what)
		}
	}
	for i := range 3 {
		l.Wake()
		within(empty, fmt.Sprint("empty handler call after Wake ", i+1))
	}
	em, err := NewEmitter()
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if err := em.Emit(cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: id}, []byte("x")), groupWake); err != nil {
		t.Fatal(err)
	}
	within(data, "message after the wakes")
	select {
	case <-empty:
		t.Error("an empty handler call with no Wake")
	default:
	}
	l.Wake()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a stop right after a Wake")
	}
}
