package sinks

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ids returns the ids of hs.
func ids(hs []*held[int]) []uint64 {
	var out []uint64
	for _, h := range hs {
		out = append(out, h.id)
	}
	return out
}

// holdN holds n messages of size 10 and returns them.
func holdN(l *inflight[int], n int) []*held[int] {
	var hs []*held[int]
	for range n {
		h := l.get()
		l.hold(h, 10)
		hs = append(hs, h)
	}
	return hs
}

func TestInflightConfirm(t *testing.T) {
	tests := []struct {
		name string
		// run publishes and confirms; it returns the ids it expects
		// confirm to finish.
		run  func(l *inflight[int], hs []*held[int]) (got int, want int)
		live int
	}{
		{
			name: "a round confirms what went out on its connection before its PING",
			run: func(l *inflight[int], hs []*held[int]) (int, int) {
				for _, h := range hs[:3] {
					l.published(h, 1, time.Time{})
				}
				upto := l.pubSeq
				l.published(hs[3], 1, time.Time{}) // after the PING
				return l.confirm(1, upto), 3
			},
			live: 2,
		},
		{
			name: "a round on a new connection confirms nothing sent on the old one",
			run: func(l *inflight[int], hs []*held[int]) (int, int) {
				for _, h := range hs {
					l.published(h, 1, time.Time{})
				}
				return l.confirm(2, l.pubSeq), 0
			},
			live: 5,
		},
		{
			name: "a message sent again on the new connection is confirmed there",
			run: func(l *inflight[int], hs []*held[int]) (int, int) {
				for _, h := range hs {
					l.published(h, 1, time.Time{})
				}
				l.published(hs[1], 2, time.Time{})
				l.published(hs[3], 2, time.Time{})
				return l.confirm(2, l.pubSeq), 2
			},
			live: 3,
		},
		{
			name: "unsent and retried messages are not confirmed",
			run: func(l *inflight[int], hs []*held[int]) (int, int) {
				l.published(hs[0], 1, time.Time{})
				l.published(hs[1], 1, time.Time{})
				l.retry(hs[1], time.Time{})
				return l.confirm(1, l.pubSeq), 1
			},
			live: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newInflight[int](8, false)
			hs := holdN(l, 5)
			got, want := tt.run(l, hs)
			if got != want {
				t.Errorf("confirm finished %d, want %d", got, want)
			}
			if l.live != tt.live {
				t.Errorf("live %d, want %d", l.live, tt.live)
			}
			checkInflight(t, l)
		})
	}
}

func TestInflightFinishOnce(t *testing.T) {
	l := newInflight[int](8, true)
	hs := holdN(l, 3)
	l.published(hs[0], 0, time.Now())
	if !l.finish(hs[0]) {
		t.Fatal("first finish reported false")
	}
	if l.finish(hs[0]) {
		t.Error("second finish of one message reported true: it would be counted twice")
	}
	if l.lookup(hs[0].id) != nil {
		t.Error("a finished message is still found by id")
	}
	if got := l.lookup(hs[1].id); got != hs[1] {
		t.Errorf("lookup(%d) = %v, want the live message", hs[1].id, got)
	}
	if n := l.finishAll(); n != 2 {
		t.Errorf("finishAll finished %d, want the 2 still live", n)
	}
	if l.live != 0 || l.sent != 0 || l.bytes != 0 || len(l.pending()) != 0 {
		t.Errorf("after finishAll: live %d sent %d bytes %d pending %d, want all 0", l.live, l.sent, l.bytes, len(l.pending()))
	}
	if unindexed := newInflight[int](8, false); unindexed.lookup(1) != nil {
		t.Error("an unindexed table found a message by id")
	}
}

// TestInflightReuse: finished messages at the head are recycled, up to
// maxFree of them, and a slow message does not keep a growing queue of
// finished ones behind it.
func TestInflightReuse(t *testing.T) {
	l := newInflight[int](4, false)
	hs := holdN(l, 10)
	for _, h := range hs {
		l.finish(h)
	}
	l.advance()
	if len(l.free) != 4 || len(l.q) != 0 {
		t.Errorf("free %d, queue %d; want 4 kept for reuse and an empty queue", len(l.free), len(l.q))
	}
	slow := holdN(l, 1)[0]
	for range 5000 {
		h := holdN(l, 1)[0]
		l.finish(h)
		l.advance()
	}
	if n := len(l.pending()); n > 2*l.live+1024 {
		t.Errorf("%d queued behind 1 live message", n)
	}
	if diff := cmp.Diff([]uint64{slow.id}, ids(livePending(l))); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	checkInflight(t, l)
}

func livePending(l *inflight[int]) []*held[int] {
	var out []*held[int]
	for _, h := range l.pending() {
		if h.state != stDone {
			out = append(out, h)
		}
	}
	return out
}

// checkInflight verifies the table's counts against its queue.
func checkInflight(t *testing.T, l *inflight[int]) {
	t.Helper()
	live, sent, bytes := 0, 0, 0
	for _, h := range l.pending() {
		switch h.state {
		case stDone:
			continue
		case stSent:
			sent++
		}
		live++
		bytes += h.size
		if l.byID != nil && l.byID[h.id] != h {
			t.Fatalf("live message %d not indexed", h.id)
		}
	}
	if live != l.live || sent != l.sent || bytes != l.bytes {
		t.Fatalf("counts live %d sent %d bytes %d; the queue holds live %d sent %d bytes %d", l.live, l.sent, l.bytes, live, sent, bytes)
	}
	if l.byID != nil && len(l.byID) != live {
		t.Fatalf("index holds %d, %d live", len(l.byID), live)
	}
}

// FuzzInflight drives an in-flight table with an arbitrary sequence of operations
// and checks after each: the counts equal the queue; every message held
// is finished at most once; a round trip confirms only messages that went
// out on its connection before it, and a round covering every publish
// confirms all of them; in the end every message is finished exactly once.
func FuzzInflight(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 9, 17, 4, 5, 1, 4, 6, 7})
	f.Add([]byte{0, 8, 16, 1, 1, 1, 5, 2, 1, 12, 3, 6, 4})
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 1, 2, 10, 5, 9, 17, 4, 6, 255})
	f.Fuzz(func(t *testing.T, ops []byte) {
		l := newInflight[int](4, true)
		finished := map[uint64]int{}
		all := map[uint64]*held[int]{}
		var conn uint64
		nth := func(arg int, want func(*held[int]) bool) *held[int] {
			var c []*held[int]
			for _, h := range l.pending() {
				if want(h) {
					c = append(c, h)
				}
			}
			if len(c) == 0 {
				return nil
			}
			return c[arg%len(c)]
		}
		for _, b := range ops {
			arg := int(b >> 3)
			switch b & 7 {
			case 0: // hold
				h := l.get()
				if all[h.id] != nil {
					t.Fatalf("id %d handed out twice", h.id)
				}
				l.hold(h, arg+1)
				all[h.id] = h
			case 1: // publish (or publish again) on the current connection
				if h := nth(arg, func(h *held[int]) bool { return h.state != stDone }); h != nil {
					l.published(h, conn, time.Time{})
				}
			case 2: // the client refused it: later
				if h := nth(arg, func(h *held[int]) bool { return h.state == stSent }); h != nil {
					l.retry(h, time.Time{})
				}
			case 3: // an outcome for one message
				if h := nth(arg, func(h *held[int]) bool { return h.state != stDone }); h != nil {
					if l.finish(h) {
						finished[h.id]++
					}
				}
			case 4: // a round trip on the current connection
				upto := l.pubSeq - min(uint64(arg%4), l.pubSeq)
				type snap struct {
					state        uint8
					conn, pubSeq uint64
				}
				before := map[uint64]snap{}
				for _, h := range l.pending() {
					before[h.id] = snap{h.state, h.conn, h.pubSeq}
				}
				n := l.confirm(conn, upto)
				got := 0
				for id, s := range before {
					if all[id].state != stDone || s.state == stDone {
						continue
					}
					got++
					finished[id]++
					if s.state != stSent || s.conn != conn || s.pubSeq >= upto {
						t.Fatalf("confirm(%d, %d) finished message %d (state %d, conn %d, publish %d)", conn, upto, id, s.state, s.conn, s.pubSeq)
					}
				}
				if got != n {
					t.Fatalf("confirm reported %d, finished %d", n, got)
				}
				if upto == l.pubSeq {
					for _, h := range l.pending() {
						if h.state == stSent && h.conn == conn {
							t.Fatalf("message %d sent on connection %d before the round is not confirmed", h.id, conn)
						}
					}
				}
			case 5: // reconnect
				conn++
			case 6:
				l.advance()
			case 7:
				if arg == 31 {
					for _, h := range livePending(l) {
						finished[h.id]++
					}
					l.finishAll()
				}
			}
			checkInflight(t, l)
			for id, n := range finished {
				if n > 1 {
					t.Fatalf("message %d finished %d times", id, n)
				}
			}
		}
		for _, h := range livePending(l) {
			finished[h.id]++
		}
		l.finishAll()
		for id := range all {
			if finished[id] != 1 {
				t.Fatalf("message %d finished %d times, want once", id, finished[id])
			}
		}
	})
}
