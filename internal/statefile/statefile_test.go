package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	boot  = "0f8c5a4e-4a3b-4f3e-9c1d-2b7e8f9a0b1c"
	boot2 = "11111111-2222-3333-4444-555555555555"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := State{BootID: boot, Time: time.Date(2026, 11, 30, 12, 0, 0, 123, time.UTC), Clean: true, LastPID: 4711, PIDMax: 4194304,
		PID: 812, Metrics: "127.0.0.1:9464"}
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".state-*")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}
}

func TestStateReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
	for name, body := range map[string]string{
		"not json":    "{",
		"version":     `{"version":2,"boot_id":"` + boot + `","time":"2026-11-30T12:00:00Z"}`,
		"boot id":     `{"version":1,"boot_id":"x","time":"2026-11-30T12:00:00Z"}`,
		"no time":     `{"version":1,"boot_id":"` + boot + `"}`,
		"pid > max":   `{"version":1,"boot_id":"` + boot + `","time":"2026-11-30T12:00:00Z","ns_last_pid":9,"pid_max":8}`,
		"empty file":  "",
		"binary junk": "\x00\x01\x02",
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, StateName), []byte(body), 0o600)
			if _, err := Read(dir); !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestPIDsAllocated(t *testing.T) {
	tests := []struct {
		prev, last, max uint32
		want            uint64
		wrapped         bool
	}{
		{1000, 1500, 32768, 500, false},
		{1000, 1000, 32768, 0, false},
		{32000, 1300, 32768, 768 + 1000, true},
		{32000, 200, 32768, 768 + 200, true},
	}
	for _, tt := range tests {
		n, w := PIDsAllocated(tt.prev, tt.last, tt.max)
		if n != tt.want || w != tt.wrapped {
			t.Errorf("PIDsAllocated(%d, %d, %d) got %d, %v; want %d, %v", tt.prev, tt.last, tt.max, n, w, tt.want, tt.wrapped)
		}
	}
}

// TestSeqsSurviveWithoutClose: what Set stored is in the file without
// Close (a SIGKILLed daemon never closes), and a daemon started in the
// same boot gets it back; in another boot it gets nothing, with the
// reason.
func TestSeqsSurviveWithoutClose(t *testing.T) {
	dir := t.TempDir()
	s, prev, prevErr, err := OpenSeqs(dir, boot)
	if err != nil {
		t.Fatal(err)
	}
	if prev != nil || !errors.Is(prevErr, os.ErrNotExist) {
		t.Errorf("first open: prev %v, %v; want none, os.ErrNotExist", prev, prevErr)
	}
	s.Set(1, 1, 0, 10)
	s.Set(1, 1, 1, 20)
	s.Set(1, 1, 0, 11)
	want := []Stream{{1, 1, 0, 11}, {1, 1, 1, 20}}
	if diff := cmp.Diff(want, s.Snapshot()); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	// No Close: a second mapping of the file sees it.
	s2, prev, prevErr, err := OpenSeqs(dir, boot)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if diff := cmp.Diff(want, prev); diff != "" || prevErr != nil {
		t.Errorf("same boot: prev (-want +got):\n%s, err %v", diff, prevErr)
	}
	if diff := cmp.Diff(want, s2.Snapshot()); diff != "" {
		t.Errorf("carried over (-want +got):\n%s", diff)
	}
	s.Close()
	s3, prev, prevErr, err := OpenSeqs(dir, boot2)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if prev != nil || !errors.Is(prevErr, ErrOtherBoot) {
		t.Errorf("other boot: prev %v, %v; want none, ErrOtherBoot", prev, prevErr)
	}
}

func TestSeqsCorrupt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, SeqsName), []byte("garbage that is not a table at all, long enough to have a header......"), 0o600)
	s, prev, prevErr, err := OpenSeqs(dir, boot)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if prev != nil || !errors.Is(prevErr, ErrCorrupt) {
		t.Errorf("got %v, %v; want none, ErrCorrupt", prev, prevErr)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(State{BootID: boot, Time: time.Unix(1700000000, 5), LastPID: 42, PIDMax: 32768}))
	f.Add(Encode(State{BootID: boot, Time: time.Unix(1700000000, 5), PID: 812, Metrics: "[::1]:9464"}))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(s))
		if err != nil {
			t.Fatalf("re-decoding an encoded state: %v", err)
		}
		if !again.Time.Equal(s.Time) || again.BootID != s.BootID || again.LastPID != s.LastPID || again.PID != s.PID || again.Metrics != s.Metrics {
			t.Fatalf("round trip got %+v, want %+v", again, s)
		}
	})
}

func FuzzDecodeSeqs(f *testing.F) {
	dir := f.TempDir()
	s, _, _, err := OpenSeqs(dir, boot)
	if err != nil {
		f.Fatal(err)
	}
	s.Set(1, 1, 0, 7)
	s.Set(1, 1, 1, 9)
	s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, SeqsName))
	f.Add(b[:headerLen+2*slotLen])
	f.Add(b[:headerLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, streams, err := DecodeSeqs(b)
		if err == nil && headerLen+len(streams)*slotLen > len(b) {
			t.Fatalf("%d streams from %d bytes", len(streams), len(b))
		}
	})
}

func TestDecodeRejectsUnencodableTime(t *testing.T) {
	b := []byte(`{"version":1,"boot_id":"` + boot + `","time":"9999-12-31T23:59:59-23:59"}`)
	if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("got %v, want ErrCorrupt (its UTC year is 10000)", err)
	}
}
