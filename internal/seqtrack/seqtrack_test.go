package seqtrack_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// step is one message fed to a Tracker.
type step struct {
	key seqtrack.Key
	seq uint32
}

var (
	kernel = seqtrack.Key{Sender: 0, Idx: 1, Val: 1}
	other  = seqtrack.Key{Sender: 4242, Idx: 1, Val: 1}
	w1     = seqtrack.Key{Sender: 0, Idx: 3, Val: 1}
)

// seqs makes steps of one stream.
func seqs(k seqtrack.Key, ss ...uint32) []step {
	out := make([]step, len(ss))
	for i, s := range ss {
		out[i] = step{key: k, seq: s}
	}
	return out
}

func feed(l *seqtrack.Tracker, steps []step) []seqtrack.Result {
	out := make([]seqtrack.Result, len(steps))
	for i, s := range steps {
		out[i] = l.Observe(s.key, s.seq)
	}
	return out
}

var (
	first   = seqtrack.Result{Kind: seqtrack.First}
	inOrder = seqtrack.Result{Kind: seqtrack.InOrder}
	dup     = seqtrack.Result{Kind: seqtrack.Duplicate}
	late    = seqtrack.Result{Kind: seqtrack.Late}
	reset   = seqtrack.Result{Kind: seqtrack.Reset}
)

func gap(from, to, lost uint32) seqtrack.Result {
	return seqtrack.Result{Kind: seqtrack.Gap, Lost: lost, FromSeq: from, ToSeq: to}
}

func lostWith(r seqtrack.Result, lost uint32) seqtrack.Result {
	r.Lost = lost
	return r
}

func TestObserve(t *testing.T) {
	const max = math.MaxUint32
	tests := []struct {
		name  string
		opts  seqtrack.Options
		steps []step
		want  []seqtrack.Result
	}{
		{
			name:  "first message sets base without loss",
			steps: seqs(kernel, 123456),
			want:  []seqtrack.Result{first},
		},
		{
			name:  "in order",
			steps: seqs(kernel, 7, 8, 9, 10),
			want:  []seqtrack.Result{first, inOrder, inOrder, inOrder},
		},
		{
			name:  "gap of one",
			steps: seqs(kernel, 1, 2, 4, 5),
			want:  []seqtrack.Result{first, inOrder, gap(3, 3, 1), inOrder},
		},
		{
			name:  "gap of many",
			steps: seqs(kernel, 1, 2, 1002),
			want:  []seqtrack.Result{first, inOrder, gap(3, 1001, 999)},
		},
		{
			name:  "duplicate of last",
			steps: seqs(kernel, 1, 2, 2, 3),
			want:  []seqtrack.Result{first, inOrder, dup, inOrder},
		},
		{
			name:  "duplicate behind, at the horizon",
			steps: seqs(kernel, 5000, 5001, 5001-1024, 5002),
			want:  []seqtrack.Result{first, inOrder, dup, inOrder},
		},
		{
			name:  "lost message arriving late with no window is a duplicate, loss kept",
			steps: seqs(kernel, 1, 3, 2, 4),
			want:  []seqtrack.Result{first, gap(2, 2, 1), dup, inOrder},
		},
		{
			name:  "contiguous wrap-around",
			steps: seqs(kernel, max-1, max, 0, 1),
			want:  []seqtrack.Result{first, inOrder, inOrder, inOrder},
		},
		{
			name:  "gap across the wrap",
			steps: seqs(kernel, 4294967290, 5, 6),
			want:  []seqtrack.Result{first, gap(4294967291, 4, 10), inOrder},
		},
		{
			name:  "duplicate across the wrap",
			steps: seqs(kernel, max, 0, 1, max-3, 2),
			want:  []seqtrack.Result{first, inOrder, inOrder, dup, inOrder},
		},
		{
			name:  "sender restart is a reset without loss",
			steps: seqs(kernel, 5000, 5001, 0, 1, 2),
			want:  []seqtrack.Result{first, inOrder, reset, inOrder, inOrder},
		},
		{
			name:  "one past the horizon is a reset",
			steps: seqs(kernel, 5000, 5000-1025, 5000-1024),
			want:  []seqtrack.Result{first, reset, inOrder},
		},
		{
			name:  "restart to a seq a little beyond the horizon",
			steps: seqs(kernel, 100000, 100001, 98000, 98001),
			want:  []seqtrack.Result{first, inOrder, reset, inOrder},
		},
		{
			name:  "largest forward jump is a gap",
			steps: seqs(kernel, 0, 1<<31),
			want:  []seqtrack.Result{first, gap(1, 1<<31-1, 1<<31-1)},
		},
		{
			name:  "forward jump of 2^31 or more is a reset",
			steps: seqs(kernel, 0, 1<<31+1, 1<<31+2),
			want:  []seqtrack.Result{first, reset, inOrder},
		},
		{
			name: "separate senders are separate streams",
			steps: []step{
				{kernel, 10}, {other, 10}, {kernel, 11}, {other, 11}, {other, 13}, {kernel, 12},
			},
			want: []seqtrack.Result{first, first, inOrder, inOrder, gap(12, 12, 1), inOrder},
		},
		{
			name: "separate connector ids are separate streams",
			steps: []step{
				{kernel, 10}, {w1, 500}, {kernel, 11}, {w1, 501},
			},
			want: []seqtrack.Result{first, first, inOrder, inOrder},
		},
		// Reorder window.
		{
			name:  "window: late arrival within the window is not lost",
			opts:  seqtrack.Options{ReorderWindow: 4},
			steps: seqs(kernel, 10, 12, 11, 13),
			want:  []seqtrack.Result{first, gap(11, 11, 0), late, inOrder},
		},
		{
			name:  "window: second copy of a late message is a duplicate",
			opts:  seqtrack.Options{ReorderWindow: 4},
			steps: seqs(kernel, 10, 12, 11, 11, 12),
			want:  []seqtrack.Result{first, gap(11, 11, 0), late, dup, dup},
		},
		{
			name:  "window: W=1 accepts a swapped pair",
			opts:  seqtrack.Options{ReorderWindow: 1},
			steps: seqs(kernel, 10, 12, 11, 14, 13, 15),
			want:  []seqtrack.Result{first, gap(11, 11, 0), late, gap(13, 13, 0), late, inOrder},
		},
		{
			name: "window: hole is lost once the stream is W past it, exactly once",
			opts: seqtrack.Options{ReorderWindow: 2},
			// Hole 11: distance 1 at 12, 2 at 13 (still in window), 3 at 14 (lost).
			steps: seqs(kernel, 10, 12, 13, 14, 15, 11, 16),
			want: []seqtrack.Result{
				first, gap(11, 11, 0), inOrder, lostWith(inOrder, 1), inOrder, dup, inOrder,
			},
		},
		{
			name: "window: gap wider than the window loses the far part at once",
			opts: seqtrack.Options{ReorderWindow: 2},
			// Holes 11..14 at 15: 11 and 12 beyond W, 13 and 14 pending.
			steps: seqs(kernel, 10, 15, 13, 16, 17, 18),
			want: []seqtrack.Result{
				first, gap(11, 14, 2), late, inOrder, lostWith(inOrder, 1), inOrder,
			},
		},
		{
			name: "window: a later gap expires older holes",
			opts: seqtrack.Options{ReorderWindow: 2},
			// At 12 hole 11 pending; at 20 hole 11 expires (1) and 13..17 are
			// beyond W (5), 18 and 19 pending.
			steps: seqs(kernel, 10, 12, 20, 11, 19, 18),
			want: []seqtrack.Result{
				first, gap(11, 11, 0), gap(13, 19, 6), dup, late, late,
			},
		},
		{
			name: "window: max window",
			opts: seqtrack.Options{ReorderWindow: 64},
			// At 66, hole 1 is 65 back: lost. At 130 the holes 3..65 leave
			// the window (63 lost) and 67..129 are pending.
			steps: seqs(kernel, 0, 66, 2, 1, 66+64, 67, 65),
			want: []seqtrack.Result{
				first, gap(1, 65, 1), late, dup, gap(67, 66+63, 63), late, dup,
			},
		},
		{
			name:  "window: reset declares pending holes lost",
			opts:  seqtrack.Options{ReorderWindow: 4},
			steps: seqs(kernel, 5000, 5002, 5004, 0, 1),
			want:  []seqtrack.Result{first, gap(5001, 5001, 0), gap(5003, 5003, 0), lostWith(reset, 2), inOrder},
		},
		{
			name:  "window: wrap-around with a late arrival",
			opts:  seqtrack.Options{ReorderWindow: 8},
			steps: seqs(kernel, max-1, 1, max, 0, 2),
			want:  []seqtrack.Result{first, gap(max, 0, 0), late, late, inOrder},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := seqtrack.New(tt.opts)
			got := feed(l, tt.steps)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExactLoss feeds 100000 sequence numbers of which every 1000th (after
// the first message) is skipped: 99 messages lost, in 99 gaps, counted
// exactly once whatever the window.
func TestExactLoss(t *testing.T) {
	for _, start := range []uint32{0, 77, math.MaxUint32 - 50000} {
		for _, w := range []int{0, 1, 16, 64} {
			t.Run(fmt.Sprintf("start=%d/window=%d", start, w), func(t *testing.T) {
				l := seqtrack.New(seqtrack.Options{ReorderWindow: w})
				var lost uint64
				kinds := map[seqtrack.Kind]int{}
				for i := uint32(0); i < 100000; i++ {
					if i%1000 == 0 && i != 0 {
						continue
					}
					r := l.Observe(kernel, start+i)
					lost += uint64(r.Lost)
					kinds[r.Kind]++
				}
				if lost != 99 {
					t.Errorf("total Lost = %d, want 99", lost)
				}
				want := map[seqtrack.Kind]int{
					seqtrack.First:   1,
					seqtrack.Gap:     99,
					seqtrack.InOrder: 100000 - 99 - 99 - 1,
				}
				if diff := cmp.Diff(want, kinds); diff != "" {
					t.Errorf("kinds mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestPerCPUStreams interleaves the process connector's per-CPU counters the
// way the kernel multicasts them: each CPU contiguous, the merged stream
// jumping back and forth. Keyed per CPU there is no loss.
func TestPerCPUStreams(t *testing.T) {
	cpu0 := seqtrack.Key{Idx: 1, Val: 1, CPU: 0}
	cpu1 := seqtrack.Key{Idx: 1, Val: 1, CPU: 1}
	next := map[seqtrack.Key]uint32{cpu0: 100, cpu1: 987654}
	var steps []step
	// A fixed irregular interleaving: runs of 1..7 messages per CPU.
	for i := 0; i < 2000; i++ {
		k := cpu0
		if i%2 == 1 {
			k = cpu1
		}
		for n := 1 + (i*7+3)%7; n > 0; n-- {
			steps = append(steps, step{key: k, seq: next[k]})
			next[k]++
		}
	}

	t.Run("keyed per cpu", func(t *testing.T) {
		l := seqtrack.New(seqtrack.Options{})
		kinds := map[seqtrack.Kind]int{}
		var lost uint64
		for _, r := range feed(l, steps) {
			kinds[r.Kind]++
			lost += uint64(r.Lost)
		}
		want := map[seqtrack.Kind]int{seqtrack.First: 2, seqtrack.InOrder: len(steps) - 2}
		if diff := cmp.Diff(want, kinds); diff != "" {
			t.Errorf("kinds mismatch (-want +got):\n%s", diff)
		}
		if lost != 0 {
			t.Errorf("lost = %d, want 0", lost)
		}
		if got := l.Streams(); got != 2 {
			t.Errorf("Streams() = %d, want 2", got)
		}
	})

	// The same feed with the CPU ignored is what the key's CPU field is for:
	// every switch of CPU looks like a gap or a restart.
	t.Run("cpu ignored is not clean", func(t *testing.T) {
		l := seqtrack.New(seqtrack.Options{})
		var lost uint64
		for _, s := range steps {
			lost += uint64(l.Observe(seqtrack.Key{Idx: 1, Val: 1}, s.seq).Lost)
		}
		if lost == 0 {
			t.Errorf("lost = 0 with CPUs merged, want > 0")
		}
	})
}

func TestMaxStreams(t *testing.T) {
	a := seqtrack.Key{Sender: 1}
	b := seqtrack.Key{Sender: 2}
	c := seqtrack.Key{Sender: 3}
	tests := []struct {
		name          string
		steps         []step
		want          []seqtrack.Result
		wantStreams   int
		wantEvictions uint64
	}{
		{
			name:          "within bound",
			steps:         []step{{a, 1}, {b, 1}, {a, 2}, {b, 2}},
			want:          []seqtrack.Result{first, first, inOrder, inOrder},
			wantStreams:   2,
			wantEvictions: 0,
		},
		{
			name: "least recently used is evicted and starts over",
			// a b c: c evicts a. a again evicts b (now the oldest).
			steps:         []step{{a, 1}, {b, 1}, {c, 1}, {a, 5}, {c, 2}, {b, 9}},
			want:          []seqtrack.Result{first, first, first, first, inOrder, first},
			wantStreams:   2,
			wantEvictions: 3,
		},
		{
			name: "observing refreshes recency",
			// a b a c: c evicts b, not a.
			steps:         []step{{a, 1}, {b, 1}, {a, 2}, {c, 1}, {a, 3}},
			want:          []seqtrack.Result{first, first, inOrder, first, inOrder},
			wantStreams:   2,
			wantEvictions: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := seqtrack.New(seqtrack.Options{MaxStreams: 2})
			got := feed(l, tt.steps)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results mismatch (-want +got):\n%s", diff)
			}
			if got := l.Streams(); got != tt.wantStreams {
				t.Errorf("Streams() = %d, want %d", got, tt.wantStreams)
			}
			if got := l.Evictions(); got != tt.wantEvictions {
				t.Errorf("Evictions() = %d, want %d", got, tt.wantEvictions)
			}
		})
	}

	t.Run("many streams stay bounded", func(t *testing.T) {
		l := seqtrack.New(seqtrack.Options{MaxStreams: 100})
		for i := uint32(0); i < 1000; i++ {
			l.Observe(seqtrack.Key{Sender: i}, 0)
		}
		if got := l.Streams(); got != 100 {
			t.Errorf("Streams() = %d, want 100", got)
		}
		if got := l.Evictions(); got != 900 {
			t.Errorf("Evictions() = %d, want 900", got)
		}
		// The newest 100 survive.
		for i := uint32(900); i < 1000; i++ {
			if got := l.Observe(seqtrack.Key{Sender: i}, 1); got != inOrder {
				t.Fatalf("Observe(sender %d) = %+v, want %+v", i, got, inOrder)
			}
		}
	})
}

func TestForget(t *testing.T) {
	l := seqtrack.New(seqtrack.Options{MaxStreams: 2})
	l.Observe(kernel, 10)
	l.Observe(other, 10)
	l.Forget(other)
	l.Forget(w1) // unknown: no-op
	if got := l.Streams(); got != 1 {
		t.Errorf("Streams() after Forget = %d, want 1", got)
	}
	got := feed(l, []step{{other, 500}, {kernel, 11}, {other, 501}})
	want := []seqtrack.Result{first, inOrder, inOrder}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results mismatch (-want +got):\n%s", diff)
	}
	if got := l.Evictions(); got != 0 {
		t.Errorf("Evictions() = %d, want 0 (Forget freed a slot)", got)
	}
	l.Forget(kernel)
	l.Forget(other)
	if got := l.Streams(); got != 0 {
		t.Errorf("Streams() = %d, want 0", got)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    seqtrack.Kind
		want string
	}{
		{seqtrack.First, "first"},
		{seqtrack.InOrder, "in-order"},
		{seqtrack.Gap, "gap"},
		{seqtrack.Duplicate, "duplicate"},
		{seqtrack.Reset, "reset"},
		{seqtrack.Late, "late"},
		{seqtrack.Kind(200), "Kind(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.k.String(); got != tt.want {
				t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.k), got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    seqtrack.Options
		wantErr bool
	}{
		{"zero", seqtrack.Options{}, false},
		{"max window", seqtrack.Options{ReorderWindow: 64, MaxStreams: 1}, false},
		{"window too big", seqtrack.Options{ReorderWindow: 65}, true},
		{"negative window", seqtrack.Options{ReorderWindow: -1}, true},
		{"negative max streams", seqtrack.Options{MaxStreams: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %t", err, tt.wantErr)
			}
			if tt.wantErr {
				defer func() {
					if recover() == nil {
						t.Errorf("New(%+v) did not panic", tt.opts)
					}
				}()
			}
			seqtrack.New(tt.opts)
		})
	}
}

func TestObserveAllocs(t *testing.T) {
	for _, w := range []int{0, 64} {
		t.Run(fmt.Sprintf("window=%d", w), func(t *testing.T) {
			l := seqtrack.New(seqtrack.Options{ReorderWindow: w})
			keys := []seqtrack.Key{kernel, other, w1, {Idx: 1, Val: 1, CPU: 1}}
			for _, k := range keys {
				l.Observe(k, 0)
			}
			var seq uint32
			kinds := map[seqtrack.Kind]bool{}
			// Runs: in order, gap, late/duplicate, reset, across streams.
			allocs := testing.AllocsPerRun(1000, func() {
				for _, k := range keys {
					kinds[l.Observe(k, seq+1).Kind] = true
					kinds[l.Observe(k, seq+4).Kind] = true
					kinds[l.Observe(k, seq+3).Kind] = true
					kinds[l.Observe(k, seq+3).Kind] = true
					kinds[l.Observe(k, seq+5000).Kind] = true
					kinds[l.Observe(k, seq).Kind] = true
				}
				seq += 10
			})
			if allocs != 0 {
				t.Errorf("Observe allocates %v times per run, want 0", allocs)
			}
			for _, k := range []seqtrack.Kind{seqtrack.InOrder, seqtrack.Gap, seqtrack.Duplicate, seqtrack.Reset} {
				if !kinds[k] {
					t.Errorf("kind %v not exercised", k)
				}
			}
			if w > 0 && !kinds[seqtrack.Late] {
				t.Errorf("kind %v not exercised", seqtrack.Late)
			}
		})
	}
}

func BenchmarkObserve(b *testing.B) {
	benches := []struct {
		name    string
		window  int
		streams uint32
		skip    uint32 // skip one seq in every skip (0: none)
	}{
		{"in-order/1-stream", 0, 1, 0},
		{"in-order/1-stream/window=64", 64, 1, 0},
		{"gaps/1-stream", 0, 1, 100},
		{"gaps/1-stream/window=64", 64, 1, 100},
		{"in-order/2-cpus", 0, 2, 0},
		{"in-order/1024-streams", 0, 1024, 0},
		{"in-order/65536-streams", 0, 65536, 0},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			l := seqtrack.New(seqtrack.Options{ReorderWindow: bb.window})
			seq := make([]uint32, bb.streams)
			var lost uint64
			b.ReportAllocs()
			i := uint32(0)
			for b.Loop() {
				s := i % bb.streams
				i++
				seq[s]++
				if bb.skip != 0 && seq[s]%bb.skip == 0 {
					seq[s]++
				}
				lost += uint64(l.Observe(seqtrack.Key{Idx: 1, Val: 1, CPU: s}, seq[s]).Lost)
			}
			_ = lost
		})
	}
}
