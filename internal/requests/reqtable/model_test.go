package reqtable

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// model is a naive reference Table: a slice in Add order, scanned linearly.
type model struct {
	max     int
	entries []modelEntry
}

type modelEntry struct {
	key      Key
	value    int
	deadline time.Time
}

func (m *model) find(id ID, seq uint32) int {
	return slices.IndexFunc(m.entries, func(e modelEntry) bool {
		return e.key.ID == id && e.key.Seq == seq
	})
}

func (m *model) add(k Key, v int, deadline time.Time) error {
	if m.find(k.ID, k.Seq) >= 0 {
		return ErrExists
	}
	if len(m.entries) >= m.max {
		return ErrFull
	}
	m.entries = append(m.entries, modelEntry{k, v, deadline})
	return nil
}

func (m *model) lookup(id ID, seq, ack uint32, now time.Time) (int, Status) {
	i := m.find(id, seq)
	if i < 0 || m.entries[i].key.Ack+1 != ack {
		return 0, NewMessage
	}
	if !m.entries[i].deadline.After(now) {
		return 0, Late
	}
	v := m.entries[i].value
	m.entries = slices.Delete(m.entries, i, i+1)
	return v, Matched
}

func (m *model) remove(k Key) (int, bool) {
	i := m.find(k.ID, k.Seq)
	if i < 0 || m.entries[i].key != k {
		return 0, false
	}
	v := m.entries[i].value
	m.entries = slices.Delete(m.entries, i, i+1)
	return v, true
}

func (m *model) expire(now time.Time) []Expired[int] {
	byDeadline := slices.Clone(m.entries)
	// Stable, so equal deadlines keep Add order.
	slices.SortStableFunc(byDeadline, func(a, b modelEntry) int { return a.deadline.Compare(b.deadline) })
	var out []Expired[int]
	for _, e := range byDeadline {
		if e.deadline.After(now) {
			break
		}
		out = append(out, Expired[int]{Key: e.key, Value: e.value})
	}
	m.entries = slices.DeleteFunc(m.entries, func(e modelEntry) bool { return !e.deadline.After(now) })
	return out
}

func (m *model) nextDeadline() (time.Time, bool) {
	if len(m.entries) == 0 {
		return time.Time{}, false
	}
	min := m.entries[0].deadline
	for _, e := range m.entries[1:] {
		if e.deadline.Before(min) {
			min = e.deadline
		}
	}
	return min, true
}

// modelAcks are the acks requests use: around the wrap, so replies (ack+1)
// often land on another request's ack.
var modelAcks = [4]uint32{0xfffffffe, 0xffffffff, 0, 1}

const tick = time.Millisecond

// runOps drives a Table and the model with operations decoded from ops and
// fails on the first difference. Each operation takes up to four bytes;
// missing bytes read as zero. seqMask limits seqs so that keys collide.
func runOps(t *testing.T, max int, seqMask uint8, ops []byte) {
	t.Helper()
	tab := New[int](max)
	ref := &model{max: max}
	now := t0
	next := 0 // handle for the next Add
	for n := 0; len(ops) > 0; n++ {
		var b [4]byte
		k := copy(b[:], ops)
		ops = ops[k:]
		// pick returns a key from the model's pending entries, or one built
		// from the bytes if none is pending or the byte says so.
		pick := func() Key {
			if len(ref.entries) > 0 && b[1]&0x80 == 0 {
				return ref.entries[int(b[2])%len(ref.entries)].key
			}
			return Key{ID: ID{Idx: uint32(b[1] & 1), Val: 1}, Seq: uint32(b[2] & seqMask), Ack: modelAcks[b[1]>>1&3]}
		}
		switch b[0] % 5 {
		case 0: // Add
			key := Key{ID: ID{Idx: uint32(b[1] & 1), Val: 1}, Seq: uint32(b[2] & seqMask), Ack: modelAcks[b[1]>>1&3]}
			deadline := now.Add(time.Duration(int(b[3]%16)-2) * tick)
			got := tab.Add(key, next, deadline)
			want := ref.add(key, next, deadline)
			next++
			if !errors.Is(got, want) {
				t.Fatalf("op %d: Add(%+v) = %v, want %v", n, key, got, want)
			}
		case 1: // a received message, often a reply to a pending request
			key := pick()
			ack := key.Ack + uint32(b[3]%4) // +1 is the reply; others are not
			if b[3]&0x80 != 0 {
				ack = key.Ack + 1
			}
			gv, gs := tab.Lookup(key.ID, key.Seq, ack, now)
			wv, ws := ref.lookup(key.ID, key.Seq, ack, now)
			if gv != wv || gs != ws {
				t.Fatalf("op %d: Lookup(%+v, ack %d) = %d, %v, want %d, %v", n, key, ack, gv, gs, wv, ws)
			}
		case 2: // Expire
			got := tab.Expire(now, nil)
			want := ref.expire(now)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("op %d: Expire(%v) mismatch (-want +got):\n%s", n, now.Sub(t0), diff)
			}
		case 3: // time passes
			now = now.Add(time.Duration(b[1]%8) * tick)
		case 4: // Remove, with the right or a wrong ack
			key := pick()
			key.Ack += uint32(b[3] % 2)
			gv, gok := tab.Remove(key)
			wv, wok := ref.remove(key)
			if gv != wv || gok != wok {
				t.Fatalf("op %d: Remove(%+v) = %d, %v, want %d, %v", n, key, gv, gok, wv, wok)
			}
		}
		checkState(t, n, tab, ref)
	}
	// Everything left expires eventually, in order.
	end := now.Add(time.Hour)
	if diff := cmp.Diff(ref.expire(end), tab.Expire(end, nil)); diff != "" {
		t.Fatalf("final Expire mismatch (-want +got):\n%s", diff)
	}
	checkState(t, -1, tab, ref)
}

func checkState(t *testing.T, n int, tab *Table[int], ref *model) {
	t.Helper()
	if got, want := tab.Len(), len(ref.entries); got != want {
		t.Fatalf("op %d: Len() = %d, want %d", n, got, want)
	}
	gd, gok := tab.NextDeadline()
	wd, wok := ref.nextDeadline()
	if gok != wok || !gd.Equal(wd) {
		t.Fatalf("op %d: NextDeadline() = %v, %v, want %v, %v", n, gd, gok, wd, wok)
	}
	for _, e := range ref.entries {
		if !tab.Pending(e.key.ID, e.key.Seq) {
			t.Fatalf("op %d: Pending(%+v) = false, want true", n, e.key)
		}
	}
}

// TestModel runs long random operation sequences, with many entries and
// random deadlines, against the naive model.
func TestModel(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		seqMask uint8
		ops     int
	}{
		{name: "small bound, colliding keys", max: 4, seqMask: 0x7, ops: 5000},
		{name: "many entries", max: 200, seqMask: 0xff, ops: 20000},
		{name: "bound never reached", max: 1 << 20, seqMask: 0xff, ops: 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(5) {
				rng := rand.New(rand.NewPCG(seed, 0x5eed))
				ops := make([]byte, 4*tt.ops)
				for i := range ops {
					ops[i] = byte(rng.Uint32())
				}
				// Bias towards Add so the table fills up.
				for i := 0; i < len(ops); i += 4 {
					if rng.IntN(3) == 0 {
						ops[i] = 0
					}
				}
				runOps(t, tt.max, tt.seqMask, ops)
			}
		})
	}
}

func FuzzTable(f *testing.F) {
	f.Add(uint8(2), []byte{0, 0, 1, 5, 1, 0x80, 0, 0x80, 2, 0, 0, 0})
	f.Add(uint8(1), []byte{0, 2, 3, 1, 0, 4, 3, 1, 3, 7, 0, 0, 1, 0, 0, 0x80, 2, 0, 0, 0})
	f.Add(uint8(8), []byte{0, 0, 1, 2, 0, 0, 2, 2, 0, 1, 1, 2, 4, 0, 1, 1, 3, 3, 0, 0, 2})
	f.Add(uint8(3), []byte{0, 2, 9, 15, 0, 4, 9, 0, 1, 0x02, 9, 0x80, 3, 5, 0, 0, 2})
	f.Fuzz(func(t *testing.T, max uint8, ops []byte) {
		if len(ops) > 4096 {
			ops = ops[:4096]
		}
		runOps(t, 1+int(max%16), 0x0f, ops)
	})
}
