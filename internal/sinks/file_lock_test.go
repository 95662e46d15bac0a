package sinks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/filelock"
)

// TestFileSecondWriterRefused: a second file sink on a path another one
// writes is refused, naming the holder's pid, whether it names the file
// by the same path or through another (a symlinked directory); once the
// first closes, the path can be taken.
func TestFileSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	first, _ := newFileForTest(t, FileConfig{Path: path})
	if err := os.Symlink(dir, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Join(dir, "link", "out.jsonl")} {
		_, err := NewFile(FileConfig{Path: p}, event.NewEncoder("h"), nil, nil)
		var he *filelock.HeldError
		if !errors.As(err, &he) || he.PID != os.Getpid() {
			t.Fatalf("second sink on %s: got %v, want it refused naming pid %d", p, err, os.Getpid())
		}
		if want := "pid " + strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	first.Write(rec(1, []byte("a")))
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, _ := newFileForTest(t, FileConfig{Path: path})
	second.Close(context.Background())

	// ProbeFile (check) is refused the same way while a sink holds it.
	third, _ := newFileForTest(t, FileConfig{Path: path})
	defer third.Close(context.Background())
	if err := ProbeFile(FileConfig{Path: path}); !errors.Is(err, filelock.ErrHeld) {
		t.Errorf("ProbeFile while a sink writes: got %v, want ErrHeld", err)
	}
}

// TestFileTakeover: a reload's replacement sink for the same path shares
// the file of the sink it replaces (both may write until the old one has
// drained), and keeps the lock once that one closes.
func TestFileTakeover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	old, _ := newFileForTest(t, FileConfig{Path: path})
	old.Write(rec(1, []byte("a")))
	old.Flush(context.Background())
	repl, c := newFileForTest(t, FileConfig{Path: path, Takeover: old})
	old.Write(rec(2, []byte("b"))) // the old sink still drains
	old.Close(context.Background())
	repl.Write(rec(3, []byte("c")))
	repl.Flush(context.Background())
	if err := ProbeFile(FileConfig{Path: path}); !errors.Is(err, filelock.ErrHeld) {
		t.Errorf("after the old sink closed: got %v, want the replacement to hold the lock", err)
	}
	repl.Close(context.Background())
	b, _ := os.ReadFile(path)
	if n := len(decodeLines(t, b)); n != 3 {
		t.Errorf("got %d lines, want 3:\n%s", n, b)
	}
	if got := testutil.ToFloat64(c.Sent); got != 1 {
		t.Errorf("replacement sent %v, want 1", got)
	}

	// A Takeover whose file is no longer the path's (renamed away) is
	// not shared: the new sink opens and locks the path's new file.
	old2, _ := newFileForTest(t, FileConfig{Path: path})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	repl2, _ := newFileForTest(t, FileConfig{Path: path, Takeover: old2})
	if old2.share(path) != nil {
		t.Error("share: the old sink's file is no longer the path's, yet it was shared")
	}
	repl2.Close(context.Background())
	old2.Close(context.Background())
}

// TestFileReopenOntoHeldPath: after a rename and SIGUSR1, a path whose new
// file another writer holds is not written: lines are counted as write
// errors and the holder named in the log, until the path is free.
func TestFileReopenOntoHeldPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, c := newFileForTest(t, FileConfig{Path: path})
	s.Write(rec(1, []byte("a")))
	s.Flush(context.Background())
	os.Rename(path, path+".old")
	other, _ := newFileForTest(t, FileConfig{Path: path})
	s.Reopen()
	s.Write(rec(2, []byte("b")))
	s.Flush(context.Background())
	if got := testutil.ToFloat64(c.drops.WithLabelValues(DropWriteError)); got != 1 {
		t.Errorf("write_error drops %v, want 1", got)
	}
	other.Close(context.Background())
	s.Write(rec(3, []byte("c")))
	s.Close(context.Background())
	b, _ := os.ReadFile(path)
	if n := len(decodeLines(t, b)); n != 1 {
		t.Errorf("path has %d lines after the other writer closed, want 1:\n%s", n, b)
	}
}
