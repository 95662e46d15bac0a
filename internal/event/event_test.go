package event_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

func TestBatchAddCopiesData(t *testing.T) {
	b := event.NewPool().Get()
	defer b.Release()

	src := []byte("payload-1")
	r := event.Record{Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 12, Val: 3}, Len: uint16(len(src)), Data: src}, Targets: 1}
	if stored := b.Add(&r); stored != &b.Records[0] {
		t.Errorf("Add returned %p, want the stored record %p", stored, &b.Records[0])
	}
	src2 := []byte("payload-22")
	b.Add(&event.Record{Msg: cnmsg.Message{Data: src2}, Targets: 2})
	b.Add(&event.Record{Kind: event.KindLoss, Targets: 4}) // no data

	copy(src, "XXXXXXXXX")
	copy(src2, "YYYYYYYYYY")

	var got []string
	for _, rec := range b.Records {
		got = append(got, string(rec.Msg.Data))
	}
	if diff := cmp.Diff([]string{"payload-1", "payload-22", ""}, got); diff != "" {
		t.Errorf("stored data after the sources changed (-want +got):\n%s", diff)
	}
	if b.Records[2].Msg.Data != nil {
		t.Errorf("record without data has Data %q, want nil", b.Records[2].Msg.Data)
	}
	// Appending to one record's data must not overwrite the next one's.
	_ = append(b.Records[0].Msg.Data, '!')
	if got := string(b.Records[1].Msg.Data); got != "payload-22" {
		t.Errorf("append to record 0's data changed record 1's to %q", got)
	}
	// Bytes is the memory the batch holds, at least its payloads and
	// record slots, however small.
	if got, min := b.Bytes(), len("payload-1")+len("payload-22")+3*int(unsafe.Sizeof(event.Record{})); got < min {
		t.Errorf("Bytes() = %d, want at least %d", got, min)
	}
}

// TestBatchGrowKeepsData: growing the arena keeps every stored payload
// intact and the batch's footprint grows with it.
func TestBatchGrowKeepsData(t *testing.T) {
	b := event.NewPool().Get()
	defer b.Release()
	small := b.Bytes()
	var want []string
	for i := 0; i < 200; i++ {
		d := fmt.Sprintf("payload-%d-%s", i, strings.Repeat("x", i))
		want = append(want, d)
		b.Add(&event.Record{Msg: cnmsg.Message{Data: []byte(d)}})
	}
	for i, r := range b.Records {
		if string(r.Msg.Data) != want[i] {
			t.Fatalf("record %d: got %q after growth, want %q", i, r.Msg.Data, want[i])
		}
	}
	if b.Bytes() <= small {
		t.Errorf("Bytes() %d after 200 records, not above the empty batch's %d", b.Bytes(), small)
	}
}

func TestBatchFits(t *testing.T) {
	const arena = 256 << 10 // the batch's payload arena
	t.Run("records", func(t *testing.T) {
		b := event.NewPool().Get()
		defer b.Release()
		for i := range event.MaxBatchRecords {
			if !b.Fits(0) {
				t.Fatalf("Fits(0) = false with %d records, want true below %d", i, event.MaxBatchRecords)
			}
			b.Add(&event.Record{})
		}
		if b.Fits(0) {
			t.Errorf("Fits(0) = true with %d records, want false", len(b.Records))
		}
	})
	t.Run("bytes", func(t *testing.T) {
		b := event.NewPool().Get()
		defer b.Release()
		if !b.Fits(arena + 1) {
			t.Errorf("empty batch Fits(%d) = false, want true (a first record always fits)", arena+1)
		}
		if !b.Fits(arena) {
			t.Fatalf("empty batch Fits(%d) = false, want true", arena)
		}
		chunk := make([]byte, cnmsg.MaxMsgSize)
		added := 0
		for b.Fits(len(chunk)) {
			b.Add(&event.Record{Msg: cnmsg.Message{Data: chunk}})
			added += len(chunk)
		}
		if added != arena {
			t.Errorf("added %d payload bytes before Fits said no, want %d", added, arena)
		}
		if !b.Fits(0) {
			t.Error("full arena: Fits(0) = false, want true (no payload to store)")
		}
		if b.Fits(1) {
			t.Error("full arena: Fits(1) = true, want false")
		}
	})
}

func TestBatchCount(t *testing.T) {
	b := event.NewPool().Get()
	defer b.Release()
	for _, targets := range []uint64{1, 2, 3, 1 << 63, 0, 1<<63 | 1} {
		b.Add(&event.Record{Targets: targets})
	}
	tests := []struct {
		mask uint64
		want int
	}{
		{0, 0},
		{1, 3},
		{2, 2},
		{3, 4},
		{1 << 63, 2},
		{1 << 5, 0},
		{^uint64(0), 5},
	}
	for _, tt := range tests {
		if got := b.Count(tt.mask); got != tt.want {
			t.Errorf("Count(%#x) = %d, want %d", tt.mask, got, tt.want)
		}
	}
}

func TestPoolGetIsEmpty(t *testing.T) {
	p := event.NewPool()
	b := p.Get()
	b.Add(&event.Record{Msg: cnmsg.Message{Data: []byte("x")}, Targets: 1})
	b.Release()
	for range 10 {
		b := p.Get()
		if len(b.Records) != 0 || !b.Fits(256<<10) {
			t.Fatalf("Get returned a batch with %d records, %d bytes", len(b.Records), b.Bytes())
		}
		b.Release()
	}
}

func TestReleaseReturnsToPool(t *testing.T) {
	p := event.NewPool()
	// sync.Pool may drop what is put into it (always under the race
	// detector, sometimes), so look for reuse over many rounds.
	reused := false
	for range 100 {
		b := p.Get()
		rec := b.Add(&event.Record{Msg: cnmsg.Message{Data: []byte("abc")}, Targets: 1})
		b.Retain(2) // three holders: the bridge and two sinks
		b.Release()
		b.Release()
		if rec.Msg.Data == nil {
			t.Fatal("batch cleared while one reference was still held")
		}
		b.Release()
		// The last release cleared the records: no pointers into the
		// arena are kept alive.
		if rec.Msg.Data != nil || rec.Targets != 0 {
			t.Fatalf("record after the last Release = %+v, want cleared", *rec)
		}
		if p.Get() == b {
			reused = true
			break
		}
	}
	if !reused {
		t.Error("Get never returned a released batch in 100 rounds")
	}
}

func TestOverRelease(t *testing.T) {
	p := event.NewPool()
	b := p.Get()
	b.Retain(1)
	b.Release()
	b.Release()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("third Release of a batch retained once did not panic")
		}
		if msg, _ := r.(string); !strings.Contains(msg, "released more often than retained") {
			t.Errorf("panic %v, want one about over-release", r)
		}
	}()
	b.Release()
}

func TestBatchAddLargerThanArena(t *testing.T) {
	// Callers check Fits first; Add of a record that does not fit must
	// still keep every earlier record's data intact.
	b := event.NewPool().Get()
	defer b.Release()
	first := bytes.Repeat([]byte{1}, 100)
	b.Add(&event.Record{Msg: cnmsg.Message{Data: first}})
	big := bytes.Repeat([]byte{2}, 300<<10)
	b.Add(&event.Record{Msg: cnmsg.Message{Data: big}})
	if !bytes.Equal(b.Records[0].Msg.Data, first) || !bytes.Equal(b.Records[1].Msg.Data, big) {
		t.Error("records' data changed when the arena grew")
	}
}
