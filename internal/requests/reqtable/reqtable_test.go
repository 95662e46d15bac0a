package reqtable

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

var (
	procID  = ID{Idx: 1, Val: 1}
	otherID = ID{Idx: 1, Val: 2}
)

// step is one event of a scenario: a received message, or an Expire call if
// expire is set, at t0+at.
type step struct {
	at       time.Duration
	expire   bool
	id       ID
	seq, ack uint32
}

// outcome is what a step produced.
type outcome struct {
	Value   string
	Status  Status
	OK      bool // Match's ok, recomputed by a second table run with Match
	Expired []Expired[string]
}

func TestLookup(t *testing.T) {
	const deadline = time.Second
	req := Key{ID: procID, Seq: 100, Ack: 7}
	wrap := Key{ID: procID, Seq: 200, Ack: 0xffffffff}
	sameSeq := Key{ID: otherID, Seq: 100, Ack: 9}

	tests := []struct {
		name    string
		add     []Key // value is "seq/ack", deadline t0+deadline
		steps   []step
		want    []outcome
		wantLen int
	}{
		{
			name:  "correct reply matches",
			add:   []Key{req},
			steps: []step{{at: 10 * time.Millisecond, id: procID, seq: 100, ack: 8}},
			want:  []outcome{{Value: "100/7", Status: Matched, OK: true}},
		},
		{
			name:  "reply just before deadline matches",
			add:   []Key{req},
			steps: []step{{at: deadline - time.Nanosecond, id: procID, seq: 100, ack: 8}},
			want:  []outcome{{Value: "100/7", Status: Matched, OK: true}},
		},
		{
			name: "right seq wrong ack is a new message",
			add:  []Key{req},
			steps: []step{
				{id: procID, seq: 100, ack: 7}, // the request's own ack (an echo)
				{id: procID, seq: 100, ack: 9},
				{id: procID, seq: 100, ack: 0},
			},
			want:    []outcome{{Status: NewMessage}, {Status: NewMessage}, {Status: NewMessage}},
			wantLen: 1,
		},
		{
			name: "wrong seq is a new message",
			add:  []Key{req},
			steps: []step{
				{id: procID, seq: 101, ack: 8},
				{id: procID, seq: 99, ack: 8},
			},
			want:    []outcome{{Status: NewMessage}, {Status: NewMessage}},
			wantLen: 1,
		},
		{
			name: "other id is a new message",
			add:  []Key{req},
			steps: []step{
				{id: otherID, seq: 100, ack: 8},
				{id: ID{Idx: 2, Val: 1}, seq: 100, ack: 8},
			},
			want:    []outcome{{Status: NewMessage}, {Status: NewMessage}},
			wantLen: 1,
		},
		{
			name: "same seq under two ids matched separately",
			add:  []Key{req, sameSeq},
			steps: []step{
				{id: otherID, seq: 100, ack: 8}, // procID's ack+1 under otherID
				{id: otherID, seq: 100, ack: 10},
				{id: procID, seq: 100, ack: 8},
			},
			want: []outcome{
				{Status: NewMessage},
				{Value: "100/9", Status: Matched, OK: true},
				{Value: "100/7", Status: Matched, OK: true},
			},
		},
		{
			name: "duplicate reply after a match",
			add:  []Key{req},
			steps: []step{
				{id: procID, seq: 100, ack: 8},
				{id: procID, seq: 100, ack: 8},
			},
			want: []outcome{{Value: "100/7", Status: Matched, OK: true}, {Status: NewMessage}},
		},
		{
			name: "late reply before Expire",
			add:  []Key{req},
			steps: []step{
				{at: deadline, id: procID, seq: 100, ack: 8}, // exactly at the deadline
				{at: deadline + time.Minute, id: procID, seq: 100, ack: 8},
				{at: deadline + time.Minute, expire: true},
			},
			want: []outcome{
				{Status: Late},
				{Status: Late},
				{Expired: []Expired[string]{{Key: req, Value: "100/7"}}},
			},
		},
		{
			name: "late reply after Expire",
			add:  []Key{req},
			steps: []step{
				{at: deadline, expire: true},
				{at: deadline, id: procID, seq: 100, ack: 8},
			},
			want: []outcome{
				{Expired: []Expired[string]{{Key: req, Value: "100/7"}}},
				{Status: NewMessage},
			},
		},
		{
			name: "ack wraps around",
			add:  []Key{wrap},
			steps: []step{
				{id: procID, seq: 200, ack: 0xffffffff},
				{id: procID, seq: 200, ack: 0},
			},
			want: []outcome{{Status: NewMessage}, {Value: "200/4294967295", Status: Matched, OK: true}},
		},
		{
			name: "Expire before the deadline removes nothing",
			add:  []Key{req},
			steps: []step{
				{at: deadline - time.Nanosecond, expire: true},
				{at: deadline - time.Nanosecond, id: procID, seq: 100, ack: 8},
			},
			want: []outcome{{}, {Value: "100/7", Status: Matched, OK: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run the scenario twice: once through Lookup, once through
			// Match, which must agree.
			lookup := New[string](10)
			match := New[string](10)
			for _, k := range tt.add {
				v := fmt.Sprintf("%d/%d", k.Seq, k.Ack)
				for _, tab := range []*Table[string]{lookup, match} {
					if err := tab.Add(k, v, t0.Add(deadline)); err != nil {
						t.Fatalf("Add(%+v) = %v, want nil", k, err)
					}
				}
			}
			var got []outcome
			for _, s := range tt.steps {
				now := t0.Add(s.at)
				if s.expire {
					e1 := lookup.Expire(now, nil)
					e2 := match.Expire(now, nil)
					if diff := cmp.Diff(e1, e2); diff != "" {
						t.Fatalf("Expire differs between tables (-lookup +match):\n%s", diff)
					}
					got = append(got, outcome{Expired: e1})
					continue
				}
				v, st := lookup.Lookup(s.id, s.seq, s.ack, now)
				mv, ok := match.Match(s.id, s.seq, s.ack, now)
				if mv != v {
					t.Fatalf("Match(%+v) value = %q, Lookup value = %q", s, mv, v)
				}
				got = append(got, outcome{Value: v, Status: st, OK: ok})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
			}
			if got := lookup.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
			if got := match.Len(); got != tt.wantLen {
				t.Errorf("Match table Len() = %d, want %d", got, tt.wantLen)
			}
		})
	}
}

func TestAddErrors(t *testing.T) {
	dl := t0.Add(time.Second)
	a := Key{ID: procID, Seq: 1, Ack: 10}
	b := Key{ID: procID, Seq: 2, Ack: 20}
	c := Key{ID: procID, Seq: 3, Ack: 30}

	tests := []struct {
		name string
		max  int
		// run performs setup and returns the error of the Add under test.
		run     func(tab *Table[int]) error
		want    error
		wantLen int
	}{
		{
			name: "full",
			max:  2,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				_ = tab.Add(b, 2, dl)
				return tab.Add(c, 3, dl)
			},
			want:    ErrFull,
			wantLen: 2,
		},
		{
			name: "room again after a match",
			max:  2,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				_ = tab.Add(b, 2, dl)
				tab.Match(a.ID, a.Seq, a.ReplyAck(), t0)
				return tab.Add(c, 3, dl)
			},
			wantLen: 2,
		},
		{
			name: "room again after Expire",
			max:  2,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, t0)
				_ = tab.Add(b, 2, dl)
				tab.Expire(t0, nil)
				return tab.Add(c, 3, dl)
			},
			wantLen: 2,
		},
		{
			name: "late entry still counts until expired",
			max:  1,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, t0)
				tab.Match(a.ID, a.Seq, a.ReplyAck(), dl) // late
				return tab.Add(b, 2, dl)
			},
			want:    ErrFull,
			wantLen: 1,
		},
		{
			name: "same key exists",
			max:  4,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				return tab.Add(a, 2, dl.Add(time.Hour))
			},
			want:    ErrExists,
			wantLen: 1,
		},
		{
			name: "same id and seq with another ack exists",
			max:  4,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				return tab.Add(Key{ID: a.ID, Seq: a.Seq, Ack: a.Ack + 5}, 2, dl)
			},
			want:    ErrExists,
			wantLen: 1,
		},
		{
			name: "exists is reported before full",
			max:  1,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				return tab.Add(a, 2, dl)
			},
			want:    ErrExists,
			wantLen: 1,
		},
		{
			name: "same seq under another id is fine",
			max:  4,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				return tab.Add(Key{ID: otherID, Seq: a.Seq, Ack: a.Ack}, 2, dl)
			},
			wantLen: 2,
		},
		{
			name: "key free again after a match",
			max:  4,
			run: func(tab *Table[int]) error {
				_ = tab.Add(a, 1, dl)
				tab.Match(a.ID, a.Seq, a.ReplyAck(), t0)
				return tab.Add(a, 2, dl)
			},
			wantLen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New[int](tt.max)
			if err := tt.run(tab); !errors.Is(err, tt.want) {
				t.Errorf("Add() = %v, want %v", err, tt.want)
			}
			if got := tab.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
		})
	}
}

func TestNewPanicsOnBadMax(t *testing.T) {
	for _, max := range []int{0, -1} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", max)
				}
			}()
			New[int](max)
		})
	}
}

func TestExpireOrderAndNextDeadline(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	key := func(seq uint32) Key { return Key{ID: procID, Seq: seq, Ack: seq * 10} }
	exp := func(seqs ...uint32) []Expired[string] {
		var out []Expired[string]
		for _, s := range seqs {
			out = append(out, Expired[string]{Key: key(s), Value: fmt.Sprint("r", s)})
		}
		return out
	}

	tab := New[string](16)
	// Added out of deadline order, with ties (3 and 4, 6 and 7 at the same
	// deadline; ties expire in Add order).
	adds := []struct {
		seq uint32
		at  int
	}{
		{1, 50}, {2, 10}, {3, 30}, {4, 30}, {5, 20}, {6, 40}, {7, 40}, {8, 60},
	}
	for _, a := range adds {
		if err := tab.Add(key(a.seq), fmt.Sprint("r", a.seq), ms(a.at)); err != nil {
			t.Fatalf("Add(%d) = %v", a.seq, err)
		}
	}
	// Remove 8 (unsent) and match 6 (mid-heap) before they expire.
	if _, ok := tab.Remove(key(8)); !ok {
		t.Fatal("Remove(8) = false, want true")
	}
	if _, ok := tab.Remove(Key{ID: procID, Seq: 7, Ack: 1}); ok {
		t.Fatal("Remove with the wrong ack = true, want false")
	}
	if v, ok := tab.Match(procID, 6, key(6).ReplyAck(), ms(5)); !ok || v != "r6" {
		t.Fatalf("Match(6) = %q, %v, want r6, true", v, ok)
	}

	steps := []struct {
		at       int
		want     []Expired[string]
		wantNext int // -1: none pending
	}{
		{at: 0, want: nil, wantNext: 10},
		{at: 9, want: nil, wantNext: 10},
		{at: 10, want: exp(2), wantNext: 20},
		{at: 35, want: exp(5, 3, 4), wantNext: 40},
		{at: 40, want: exp(7), wantNext: 50},
		{at: 1000, want: exp(1), wantNext: -1},
		{at: 2000, want: nil, wantNext: -1},
	}
	for _, s := range steps {
		t.Run(fmt.Sprintf("at %dms", s.at), func(t *testing.T) {
			// Expire appends to dst.
			prefix := []Expired[string]{{Value: "kept"}}
			got := tab.Expire(ms(s.at), prefix[:1:1])
			if diff := cmp.Diff(append(prefix[:1:1], s.want...), got); diff != "" {
				t.Errorf("Expire(%dms) mismatch (-want +got):\n%s", s.at, diff)
			}
			next, ok := tab.NextDeadline()
			if s.wantNext < 0 {
				if ok {
					t.Errorf("NextDeadline() = %v, true, want false", next)
				}
				return
			}
			if !ok || !next.Equal(ms(s.wantNext)) {
				t.Errorf("NextDeadline() = %v, %v, want %v, true", next, ok, ms(s.wantNext))
			}
		})
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

func BenchmarkAddMatch(b *testing.B) {
	tab := New[int](1024)
	src := NewSeqSourceFromSeed([32]byte{1})
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k, err := src.Next(procID, tab)
		if err != nil {
			b.Fatal(err)
		}
		if err := tab.Add(k, i, now.Add(time.Second)); err != nil {
			b.Fatal(err)
		}
		if _, ok := tab.Match(k.ID, k.Seq, k.ReplyAck(), now); !ok {
			b.Fatal("no match")
		}
	}
}

func TestStatusString(t *testing.T) {
	got := []string{NewMessage.String(), Matched.String(), Late.String(), Status(9).String()}
	want := []string{"new message", "matched", "late", "unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status.String mismatch (-want +got):\n%s", diff)
	}
}
