package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
)

func TestFileConformance(t *testing.T) {
	conformance{open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
		path := filepath.Join(t.TempDir(), "sub", "dir", "out.jsonl")
		s, err := NewFile(FileConfig{Path: path, Mode: 0o640}, event.NewEncoder("h"), c, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return s, func() []map[string]any {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return decodeLines(t, b)
		}
	}}.run(t)
}

func newFileForTest(t *testing.T, cfg FileConfig) (*File, *Counters) {
	t.Helper()
	c := NewMetrics(prometheus.NewRegistry()).Counters("f")
	s, err := NewFile(cfg, event.NewEncoder("h"), c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func rec(seq int, data []byte) *event.Record {
	return &event.Record{Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: uint32(seq), Len: uint16(len(data)), Data: data}}
}

func TestFileModeAndNoFollow(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	s, _ := newFileForTest(t, FileConfig{Path: path, Mode: 0o644})
	s.Close(context.Background())
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o644 {
		t.Errorf("mode got %o, want 644 (whatever the umask)", got)
	}
	link := filepath.Join(dir, "link.jsonl")
	os.Symlink(path, link)
	c := NewMetrics(prometheus.NewRegistry()).Counters("f")
	if _, err := NewFile(FileConfig{Path: link}, event.NewEncoder("h"), c, zaptest.NewLogger(t)); err == nil {
		t.Error("opening a symlink succeeded; want O_NOFOLLOW to refuse it")
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	s, c := newFileForTest(t, FileConfig{Path: path, Mode: 0o600, MaxSizeBytes: 4096, MaxFiles: 100})
	const n = 2000
	for i := 0; i < n; i++ {
		if err := s.Write(rec(i, []byte("payload payload"))); err != nil {
			t.Fatal(err)
		}
		if i%37 == 0 {
			s.Flush(context.Background())
		}
	}
	s.Close(context.Background())
	files, _ := filepath.Glob(path + "*")
	if len(files) < 10 {
		t.Fatalf("got %d files, want many rotations", len(files))
	}
	total := 0
	seen := map[float64]bool{}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 4096 {
			t.Errorf("%s is %d bytes, over max_size_bytes", f, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600", f, st.Mode().Perm())
		}
		b, _ := os.ReadFile(f)
		for _, o := range decodeLines(t, b) {
			seen[o["seq"].(float64)] = true
			total++
		}
	}
	if total != n || len(seen) != n {
		t.Errorf("lines across files %d (%d distinct), want %d", total, len(seen), n)
	}
	if v := testutil.ToFloat64(c.Sent); v != n {
		t.Errorf("sent %v, want %d", v, n)
	}
}

func TestFileMaxFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, _ := newFileForTest(t, FileConfig{Path: path, MaxSizeBytes: 1024, MaxFiles: 3})
	for i := 0; i < 500; i++ {
		s.Write(rec(i, []byte("x")))
	}
	s.Close(context.Background())
	files, _ := filepath.Glob(path + "*")
	if len(files) != 4 {
		t.Errorf("got files %v, want the live file and 3 rotated", files)
	}
}

func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	s, _ := newFileForTest(t, FileConfig{Path: path})
	s.Write(rec(1, []byte("a")))
	s.Flush(context.Background())
	// logrotate: rename, then signal.
	os.Rename(path, path+".old")
	s.Reopen()
	s.Write(rec(2, []byte("b")))
	s.Close(context.Background())
	old, _ := os.ReadFile(path + ".old")
	cur, _ := os.ReadFile(path)
	if n := len(decodeLines(t, old)); n != 1 {
		t.Errorf("renamed file has %d lines, want 1", n)
	}
	if n := len(decodeLines(t, cur)); n != 1 {
		t.Errorf("reopened file has %d lines, want 1", n)
	}
}

// TestFileFullDisk: a small tmpfs as the sink's directory. Filling it
// drops (counted) lines, the file never holds a torn line, and writing
// resumes by itself once space returns.
func TestFileFullDisk(t *testing.T) {
	dir := tmpfs(t, "64k")
	path := filepath.Join(dir, "out.jsonl")
	s, c := newFileForTest(t, FileConfig{Path: path, OnError: OnErrorDrop})
	payload := make([]byte, 100)
	n := 0
	write := func(k int) {
		for i := 0; i < k; i++ {
			if err := s.Write(rec(n, payload)); err != nil {
				t.Fatal(err)
			}
			n++
			if i%10 == 0 {
				s.Flush(context.Background())
			}
		}
		s.Flush(context.Background())
	}
	write(1000) // ~300 KB into 64 KiB
	sent, dropped := testutil.ToFloat64(c.Sent), testutil.ToFloat64(c.dropped)
	if dropped == 0 || sent == 0 || sent+dropped != float64(n) {
		t.Fatalf("after filling: sent %v + dropped %v, want both > 0 and summing to %d", sent, dropped, n)
	}
	checkWhole := func() int {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return len(decodeLines(t, b)) // fails on a torn line
	}
	if got := checkWhole(); float64(got) != sent {
		t.Fatalf("file has %d lines, sent counter %v", got, sent)
	}
	// Free space: the full file goes away (as if rotated and shipped).
	os.Remove(path)
	s.Reopen()
	before := testutil.ToFloat64(c.Sent)
	write(50)
	if got := testutil.ToFloat64(c.Sent) - before; got != 50 {
		t.Fatalf("after freeing space: sent %v of 50", got)
	}
	if got := checkWhole(); got != 50 {
		t.Fatalf("file after freeing space has %d lines, want 50", got)
	}
	s.Close(context.Background())
}

func TestFileOnErrorExit(t *testing.T) {
	dir := tmpfs(t, "16k")
	s, _ := newFileForTest(t, FileConfig{Path: filepath.Join(dir, "out.jsonl"), OnError: OnErrorExit})
	defer s.Close(context.Background())
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		if err = s.Write(rec(i, make([]byte, 100))); err == nil {
			err = s.Flush(context.Background())
		}
	}
	if err == nil {
		t.Fatal("no error on a full disk with on_error: exit")
	}
	if !isFatal(err) {
		t.Errorf("error %v does not wrap ErrFatal", err)
	}
}

func isFatal(err error) bool { return errors.Is(err, ErrFatal) }

func TestFileOnErrorBlockResumes(t *testing.T) {
	dir := tmpfs(t, "16k")
	// A file that fills the disk, to be removed while the sink blocks.
	filler := filepath.Join(dir, "filler")
	os.WriteFile(filler, make([]byte, 12<<10), 0o600)
	s, c := newFileForTest(t, FileConfig{Path: filepath.Join(dir, "out.jsonl"), OnError: OnErrorBlock, RetryInterval: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 60; i++ {
			s.Write(rec(i, make([]byte, 100)))
		}
		s.Flush(context.Background())
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("writing 60 lines into a full disk did not block")
	case <-time.After(300 * time.Millisecond):
	}
	os.Remove(filler)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writing did not resume after space returned")
	}
	if got := testutil.ToFloat64(c.Sent); got != 60 {
		t.Errorf("sent %v, want 60 (block loses nothing)", got)
	}
	s.Close(context.Background())
}

// tmpfs mounts a small tmpfs on a temp dir, unmounted (lazily, in case a
// file is still open) when the test ends.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	cntest.NeedRoot(t, "mounts a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestFileRepairsTornTail: a file whose last line has no trailing newline
// (an earlier writer crashed mid-line) is truncated back to its last
// newline before the first write, the bytes cut are logged, and the first
// new record starts on a fresh line. The same holds for a file found at
// the path on reopen (logrotate).
func TestFileRepairsTornTail(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // the fragment spans read chunks
	tests := []struct {
		name, before, kept string
	}{
		{"torn after lines", "{\"a\":1}\n{\"b\":2}\n{\"par", "{\"a\":1}\n{\"b\":2}\n"},
		{"no newline at all", "fragment", ""},
		{"long fragment", "{\"a\":1}\n" + big, "{\"a\":1}\n"},
		{"clean", "{\"a\":1}\n", "{\"a\":1}\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			if err := os.WriteFile(path, []byte(tt.before), 0o640); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			c := NewMetrics(prometheus.NewRegistry()).Counters("f")
			s, err := NewFile(FileConfig{Path: path}, event.NewEncoder("h"), c, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(rec(7, []byte("z"))); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkRepaired(t, path, tt.kept, int64(len(tt.before)-len(tt.kept)), logs)
		})
	}

	t.Run("on reopen", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.jsonl")
		core, logs := observer.New(zap.InfoLevel)
		c := NewMetrics(prometheus.NewRegistry()).Counters("f")
		s, err := NewFile(FileConfig{Path: path}, event.NewEncoder("h"), c, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(rec(1, []byte("a"))); err != nil {
			t.Fatal(err)
		}
		s.Flush(context.Background())
		// Rotated away; a torn file appears at the path.
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("{\"old\":1}\n{\"to"), 0o640); err != nil {
			t.Fatal(err)
		}
		s.Reopen()
		if err := s.Write(rec(7, []byte("z"))); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkRepaired(t, path, "{\"old\":1}\n", 4, logs)
	})
}

// checkRepaired checks that path holds kept then one record line (seq 7),
// and that one warning logged cut bytes cut (none when cut is 0).
func checkRepaired(t *testing.T, path, kept string, cut int64, logs *observer.ObservedLogs) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), kept) {
		t.Fatalf("file got %.200q, want it to start with %q", b, kept)
	}
	rest := string(b[len(kept):])
	if strings.Count(rest, "\n") != 1 || !strings.HasSuffix(rest, "\n") || !strings.HasPrefix(rest, "{") {
		t.Fatalf("after the kept lines got %.200q, want exactly one record line", rest)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(rest), &m); err != nil || m["seq"] != float64(7) {
		t.Fatalf("record line %q: %v, want the seq 7 record", rest, err)
	}
	torn := logs.FilterMessageSnippet("torn").All()
	switch {
	case cut == 0 && len(torn) != 0:
		t.Errorf("got %d torn-tail warnings for a clean file, want none", len(torn))
	case cut > 0 && (len(torn) != 1 || torn[0].ContextMap()["bytes_cut"] != cut):
		t.Errorf("torn-tail warnings got %v, want one with bytes_cut %d", torn, cut)
	}
}
