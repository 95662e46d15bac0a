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

// groupEachDatagram is TestReaderWakesForEachDatagram's own group.
const groupEachDatagram = 17

// TestReaderWakesForEachDatagram: datagrams sent one at a time, each once
// the one before was handled (and, every other one, once the reader found
// the socket empty after it: EmptyAt past the handler's return, which the
// enricher waits on), are each handled at once: in the network poller and
// in poll(2).
func TestReaderWakesForEachDatagram(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const n = 200
	for _, prio := range []int{0, 1} {
		t.Run(fmt.Sprintf("priority %d", prio), func(t *testing.T) {
			l, err := New(Config{Groups: []int{groupEachDatagram}}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.SetPriority(prio)
			id := cnmsg.ID{Idx: idxTest, Val: 0x35}
			handled := make(chan time.Time, n)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- l.Run(ctx, func(batch []cnmsg.Datagram, _ time.Time) {
					for _, d := range batch {
						if m, err := cnmsg.Decode(d.Data); err == nil && m.ID == id {
							handled <- time.Now()
						}
					}
				})
			}()
			em, err := NewEmitter()
			if err != nil {
				t.Fatal(err)
			}
			defer em.Close()
			for i := range n {
				if err := em.Emit(cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: id, Seq: uint32(i)}, []byte("x")), groupEachDatagram); err != nil {
					t.Fatal(err)
				}
				var returned time.Time
				select {
				case returned = <-handled:
				case <-time.After(5 * time.Second):
					drops, _ := l.Drops()
					t.Fatalf("message %d not handled within 5 s (stats %+v, kernel drops %d)", i, l.Stats(), drops)
				}
				// Every other datagram is sent as soon as the one before
				// was handled, while the reader is on its way back to the
				// wait: a wake-up lost there (the old wait reset the
				// poller's readiness after its empty read) left message 17
				// unhandled for 5 s.
				if i%2 == 0 {
					cntest.WaitFor(t, 5*time.Second, "the socket found empty after the batch", func() bool { return l.EmptyAt().After(returned) })
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
