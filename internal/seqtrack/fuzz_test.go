package seqtrack_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// model is what the fuzz test knows about one stream.
type model struct {
	last       uint32
	introduced uint64 // seqs skipped by forward moves since First
	lost, late uint64
}

// FuzzObserve drives a Tracker with arbitrary operations and checks, after
// every one, the invariants the package promises:
//   - no panic; Streams() never exceeds MaxStreams, evictions are LRU;
//   - the kind follows from the signed distance to the expected seq;
//   - a Gap names exactly the skipped range;
//   - every skipped seq is accounted once: lost + late + pending ==
//     skipped, so the sum of Lost never exceeds the distance advanced.
//
// Input: byte 0 the window (mod 65), byte 1 MaxStreams (1 + mod 4), then
// ops of an op byte (low 3 bits: key, high bits: mode) and operands.
func FuzzObserve(f *testing.F) {
	f.Add([]byte{0, 3, 0x00, 1, 0x00, 1, 0x00, 5, 0x00, 0xfe})
	f.Add([]byte{4, 1, 0x00, 2, 0x00, 0xff, 0x00, 0x01, 0x09, 3, 0x40, 0xff, 0xff, 0xff, 0xf0, 0x00, 30})
	f.Add([]byte{64, 2, 0x20, 0x10, 0x00, 0x20, 0x00, 0xc0, 0x01, 0x02, 0x03, 0x20, 0x10, 0x01})
	f.Add([]byte{1, 4, 0x00, 2, 0x01, 2, 0x00, 0xff, 0x01, 0xff, 0x60, 0x00, 5})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		w := int(in[0]) % 65
		maxStreams := 1 + int(in[1])%4
		in = in[2:]
		l := seqtrack.New(seqtrack.Options{ReorderWindow: w, MaxStreams: maxStreams})

		models := map[seqtrack.Key]*model{}
		var lru []seqtrack.Key // most recent first
		var evictions uint64
		touch := func(k seqtrack.Key) {
			lru = slices.DeleteFunc(lru, func(x seqtrack.Key) bool { return x == k })
			lru = slices.Insert(lru, 0, k)
		}

		for len(in) > 0 {
			op := in[0]
			in = in[1:]
			k := seqtrack.Key{Sender: uint32(op & 3), Idx: 1, Val: 1, CPU: uint32(op>>2) & 1}
			m := models[k]
			var base uint32
			if m != nil {
				base = m.last
			}
			var seq uint32
			switch op >> 5 {
			case 0, 1, 2: // small signed delta from last
				if len(in) < 1 {
					return
				}
				seq = base + uint32(int32(int8(in[0])))
				in = in[1:]
			case 3, 4: // larger signed delta
				if len(in) < 2 {
					return
				}
				seq = base + uint32(int32(int16(binary.LittleEndian.Uint16(in))))
				in = in[2:]
			case 5, 6: // absolute
				if len(in) < 4 {
					return
				}
				seq = binary.LittleEndian.Uint32(in)
				in = in[4:]
			case 7:
				l.Forget(k)
				delete(models, k)
				lru = slices.DeleteFunc(lru, func(x seqtrack.Key) bool { return x == k })
				continue
			}

			r := l.Observe(k, seq)

			if m == nil {
				if r != (seqtrack.Result{Kind: seqtrack.First}) {
					t.Fatalf("new stream %+v seq %d: got %+v, want First", k, seq, r)
				}
				if len(lru) == maxStreams {
					delete(models, lru[len(lru)-1])
					lru = lru[:len(lru)-1]
					evictions++
				}
				models[k] = &model{last: seq}
				touch(k)
			} else {
				touch(k)
				check(t, w, m, k, seq, r, l.PendingForTest(k))
			}
			if got, want := l.Streams(), len(models); got != want {
				t.Fatalf("Streams() = %d, want %d", got, want)
			}
			if got := l.Streams(); got > maxStreams {
				t.Fatalf("Streams() = %d > MaxStreams %d", got, maxStreams)
			}
			if got := l.Evictions(); got != evictions {
				t.Fatalf("Evictions() = %d, want %d", got, evictions)
			}
		}
	})
}

// check verifies r, the result of observing seq on a known stream m, and
// updates m.
func check(t *testing.T, w int, m *model, k seqtrack.Key, seq uint32, r seqtrack.Result, pending int) {
	t.Helper()
	expected := m.last + 1
	d := int32(seq - expected)
	back := m.last - seq
	switch {
	case d == 0:
		if r.Kind != seqtrack.InOrder {
			t.Fatalf("%+v: last %d seq %d: kind %v, want in-order", k, m.last, seq, r.Kind)
		}
	case d > 0:
		if r.Kind != seqtrack.Gap || r.FromSeq != expected || r.ToSeq != seq-1 {
			t.Fatalf("%+v: last %d seq %d: got %+v, want gap %d..%d", k, m.last, seq, r, expected, seq-1)
		}
	case back > seqtrack.DuplicateHorizon:
		if r.Kind != seqtrack.Reset {
			t.Fatalf("%+v: last %d seq %d: kind %v, want reset", k, m.last, seq, r.Kind)
		}
	default:
		if r.Kind != seqtrack.Duplicate && r.Kind != seqtrack.Late {
			t.Fatalf("%+v: last %d seq %d: kind %v, want duplicate or late", k, m.last, seq, r.Kind)
		}
		if r.Kind == seqtrack.Late && (back == 0 || int(back) > w) {
			t.Fatalf("%+v: last %d seq %d: late %d back with window %d", k, m.last, seq, back, w)
		}
	}
	if r.Kind != seqtrack.Gap && (r.FromSeq != 0 || r.ToSeq != 0) {
		t.Fatalf("%+v: %v result with a range: %+v", k, r.Kind, r)
	}
	switch r.Kind {
	case seqtrack.Duplicate, seqtrack.Late:
		if r.Lost != 0 {
			t.Fatalf("%+v: %v with Lost %d", k, r.Kind, r.Lost)
		}
	}
	if w == 0 {
		want := uint32(0)
		if r.Kind == seqtrack.Gap {
			want = seq - expected
		}
		if r.Lost != want || pending != 0 {
			t.Fatalf("%+v: window 0: %+v with %d pending, want Lost %d", k, r, pending, want)
		}
	}

	m.lost += uint64(r.Lost)
	if r.Kind == seqtrack.Late {
		m.late++
	}
	if d >= 0 {
		m.introduced += uint64(d)
		m.last = seq
	}
	if r.Kind == seqtrack.Reset {
		m.last = seq
	}
	if m.lost > m.introduced {
		t.Fatalf("%+v: total Lost %d exceeds the %d seqs skipped", k, m.lost, m.introduced)
	}
	if got := m.lost + m.late + uint64(pending); got != m.introduced {
		t.Fatalf("%+v: lost %d + late %d + pending %d = %d, want %d skipped", k, m.lost, m.late, pending, got, m.introduced)
	}
	if pending > w {
		t.Fatalf("%+v: %d pending holes with window %d", k, pending, w)
	}
}
