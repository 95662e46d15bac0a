package listener

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestReaderThread: the reader runs at the SCHED_FIFO priority asked for
// before Run started (the handler runs on its thread), at the process's
// scheduling once asked while it runs, at SCHED_FIFO again when asked
// again, and leaves no thread at a realtime priority when Run returns;
// EmptyAt moves past each batch once the reader finds the socket empty.
func TestReaderThread(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	l, err := New(Config{Groups: []int{groupWake}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetPriority(1)
	if !l.EmptyAt().IsZero() {
		t.Errorf("EmptyAt before Run = %v, want the zero Time", l.EmptyAt())
	}
	id := cnmsg.ID{Idx: idxTest, Val: 0x33}
	type call struct {
		policy   uint32
		priority uint32
		returned time.Time
	}
	calls := make(chan call, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(batch []cnmsg.Datagram, _ time.Time) {
			for _, d := range batch {
				if m, err := cnmsg.Decode(d.Data); err == nil && m.ID == id {
					var c call
					if a, err := unix.SchedGetAttr(0, 0); err == nil {
						c.policy, c.priority = a.Policy, a.Priority
					}
					c.returned = time.Now()
					calls <- c
				}
			}
		})
	}()
	em, err := NewEmitter()
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i, prio := range []int{1, 0, 1} {
		l.SetPriority(prio)
		if err := em.Emit(cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte("x")), groupWake); err != nil {
			t.Fatal(err)
		}
		var c call
		select {
		case c = <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not handled within 5 s", i)
		}
		switch {
		case prio == 1 && (c.policy != unix.SCHED_FIFO || c.priority != 1):
			t.Errorf("message %d handled at policy %d priority %d, want SCHED_FIFO (%d) priority 1", i, c.policy, c.priority, unix.SCHED_FIFO)
		case prio == 0 && c.policy != unix.SCHED_NORMAL:
			t.Errorf("message %d handled at policy %d after SetPriority(0), want SCHED_NORMAL", i, c.policy)
		}
		for deadline := time.Now().Add(5 * time.Second); !l.EmptyAt().After(c.returned); {
			if time.Now().After(deadline) {
				t.Fatalf("EmptyAt %v not past the handler's return %v within 5 s", l.EmptyAt(), c.returned)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if tid := realtimeThread(t); tid == 0 {
		t.Error("no thread at SCHED_FIFO while the reader has priority 1")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// No thread is left at a realtime priority for the runtime to run
	// other goroutines on.
	if tid := realtimeThread(t); tid != 0 {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
		t.Errorf("thread %d still runs at SCHED_FIFO after Run returned: %s", tid, st)
	}
}

// realtimeThread returns a thread of this process with a realtime policy,
// 0 if none.
func realtimeThread(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if a, err := unix.SchedGetAttr(tid, 0); err == nil && a.Policy == unix.SCHED_FIFO {
			return tid
		}
	}
	return 0
}

// groupExactEmpty is TestExactEmpty's own group: traffic of other tests
// would wake its reader and count empty reads of its own.
const groupExactEmpty = 17

// TestExactEmpty: with SetExactEmpty(true) (the default, what the enricher
// needs) the reader asks the socket again after each batch and finds it
// empty, so EmptyAt passes every batch; with false it waits at once after
// a batch that read fewer datagrams than asked for: no recvmmsg that finds
// the socket empty per wake-up. Both at the process's scheduling (the
// network poller) and at a realtime priority (poll(2)).
func TestExactEmpty(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const n = 20
	for _, prio := range []int{0, 1} {
		for _, exact := range []bool{true, false} {
			t.Run(fmt.Sprintf("priority %d exact %v", prio, exact), func(t *testing.T) {
				l, err := New(Config{Groups: []int{groupExactEmpty}}, zaptest.NewLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				l.SetPriority(prio)
				l.SetExactEmpty(exact)
				id := cnmsg.ID{Idx: idxTest, Val: 0x35}
				handled := make(chan struct{}, n)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					done <- l.Run(ctx, func(batch []cnmsg.Datagram, _ time.Time) {
						for _, d := range batch {
							if m, err := cnmsg.Decode(d.Data); err == nil && m.ID == id {
								handled <- struct{}{}
							}
						}
					})
				}()
				em, err := NewEmitter()
				if err != nil {
					t.Fatal(err)
				}
				defer em.Close()
				// Each message once the one before was handled: a wake-up
				// each, one datagram in each batch.
				start := l.Stats().Empty
				for i := range n {
					if err := em.Emit(cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte("x")), groupExactEmpty); err != nil {
						t.Fatal(err)
					}
					select {
					case <-handled:
					case <-time.After(5 * time.Second):
						t.Fatalf("message %d not handled within 5 s", i)
					}
				}
				if exact {
					// The last batch's empty read may come after its handler.
					cntest.WaitFor(t, 5*time.Second, "an empty read after each batch", func() bool { return l.Stats().Empty-start >= n })
				} else if got := l.Stats().Empty - start; got > n/2 {
					t.Errorf("%d reads found the socket empty for %d one-datagram batches, want few (none but spurious wake-ups)", got, n)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
