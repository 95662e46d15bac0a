package reqtable

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pendingSet is a Pender for tests.
type pendingSet map[Key]bool

func (p pendingSet) Pending(id ID, seq uint32) bool { return p[Key{ID: id, Seq: seq}] }

func TestSeqSource(t *testing.T) {
	tests := []struct {
		name    string
		start   uint32
		pending pendingSet // keys with Ack 0
		id      ID
		n       int
		want    []uint32
	}{
		{name: "increments", start: 10, n: 4, want: []uint32{10, 11, 12, 13}},
		{name: "wraps", start: 0xfffffffe, n: 4, want: []uint32{0xfffffffe, 0xffffffff, 0, 1}},
		{
			name:    "skips pending seqs of the same id",
			start:   10,
			id:      procID,
			pending: pendingSet{{ID: procID, Seq: 11}: true, {ID: procID, Seq: 12}: true, {ID: procID, Seq: 14}: true},
			n:       4,
			want:    []uint32{10, 13, 15, 16},
		},
		{
			name:    "ignores pending seqs of another id",
			start:   10,
			id:      procID,
			pending: pendingSet{{ID: otherID, Seq: 11}: true},
			n:       3,
			want:    []uint32{10, 11, 12},
		},
		{
			name:    "skips across the wrap",
			start:   0xffffffff,
			id:      procID,
			pending: pendingSet{{ID: procID, Seq: 0xffffffff}: true, {ID: procID, Seq: 0}: true},
			n:       2,
			want:    []uint32{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSeqSourceFromSeed([32]byte{7})
			s.next = tt.start
			var pending Pender
			if tt.pending != nil {
				pending = tt.pending
			}
			var got []uint32
			for range tt.n {
				k, err := s.Next(tt.id, pending)
				if err != nil {
					t.Fatalf("Next() = %v", err)
				}
				if k.ID != tt.id {
					t.Fatalf("Next() id = %+v, want %+v", k.ID, tt.id)
				}
				got = append(got, k.Seq)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("seqs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeqSourceRandomness(t *testing.T) {
	keys := func(s *SeqSource) []Key {
		var out []Key
		for range 16 {
			k, err := s.Next(procID, nil)
			if err != nil {
				t.Fatalf("Next() = %v", err)
			}
			out = append(out, k)
		}
		return out
	}
	t.Run("seeded is deterministic", func(t *testing.T) {
		a := keys(NewSeqSourceFromSeed([32]byte{1, 2, 3}))
		b := keys(NewSeqSourceFromSeed([32]byte{1, 2, 3}))
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("same seed, different keys (-first +second):\n%s", diff)
		}
	})
	t.Run("acks vary", func(t *testing.T) {
		ks := keys(NewSeqSourceFromSeed([32]byte{4}))
		acks := map[uint32]bool{}
		for _, k := range ks {
			acks[k.Ack] = true
		}
		if len(acks) < len(ks)-1 {
			t.Errorf("%d distinct acks in %d keys: %+v", len(acks), len(ks), ks)
		}
	})
	t.Run("random sources differ", func(t *testing.T) {
		a, b := keys(NewSeqSource()), keys(NewSeqSource())
		if cmp.Equal(a, b) {
			t.Errorf("two crypto-seeded sources produced the same keys: %+v", a)
		}
		if a[0].Seq == b[0].Seq && a[1].Ack == b[1].Ack {
			t.Errorf("two crypto-seeded sources share start seq and acks: %+v, %+v", a[0], b[0])
		}
	})
}

// TestSeqSourceWithTable checks the intended use: keys from Next never
// collide with pending requests, and the reply to each matches it.
func TestSeqSourceWithTable(t *testing.T) {
	tab := New[int](8)
	s := NewSeqSourceFromSeed([32]byte{9})
	s.next = 0xfffffffc // wrap while requests are pending
	dl := t0.Add(time.Second)
	var keys []Key
	for i := range 8 {
		k, err := s.Next(procID, tab)
		if err != nil {
			t.Fatalf("Next() = %v", err)
		}
		if err := tab.Add(k, i, dl); err != nil {
			t.Fatalf("Add(%+v) = %v", k, err)
		}
		keys = append(keys, k)
	}
	// Wrap the counter back onto the pending seqs: Next must skip them all.
	s.next = keys[0].Seq
	k, err := s.Next(procID, tab)
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	if tab.Pending(k.ID, k.Seq) {
		t.Errorf("Next() = %+v, which is pending", k)
	}
	if err := tab.Add(k, 99, dl); !errors.Is(err, ErrFull) {
		t.Errorf("Add to a full table = %v, want ErrFull", err)
	}
	for i, k := range keys {
		v, ok := tab.Match(k.ID, k.Seq, k.ReplyAck(), t0)
		if !ok || v != i {
			t.Errorf("Match(reply to %+v) = %d, %v, want %d, true", k, v, ok, i)
		}
	}
}
