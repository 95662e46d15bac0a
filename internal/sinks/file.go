package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/filelock"
)

// OnError is a file sink's policy when writing fails (a full disk, EIO).
type OnError int

const (
	// OnErrorDrop counts the lines that could not be written as dropped
	// and goes on; writing resumes by itself when the disk has room again.
	OnErrorDrop OnError = iota
	// OnErrorBlock holds the lines and retries; the sink's queue fills and
	// its when_full policy applies upstream.
	OnErrorBlock
	// OnErrorExit stops the daemon with an error.
	OnErrorExit
)

// ParseOnError maps the config value to a policy.
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "drop", "":
		return OnErrorDrop, nil
	case "block":
		return OnErrorBlock, nil
	case "exit":
		return OnErrorExit, nil
	}
	return 0, fmt.Errorf("on_error %q is not drop, block or exit", s)
}

// FileConfig configures a File sink.
type FileConfig struct {
	Path         string
	Mode         os.FileMode
	MaxSizeBytes int64 // rotate when a write would pass it; 0 never rotates
	MaxFiles     int   // rotated files kept: path.1 … path.N
	OnError      OnError
	// RetryInterval is the pause between attempts under OnErrorBlock.
	RetryInterval time.Duration
	// Takeover is a sink of this daemon that writes Path now and that
	// this one replaces (a reload changed or renamed it): the new sink
	// shares its open file, and so its lock, instead of being refused
	// by it. Nil for none.
	Takeover *File
}

// File appends JSON lines to a file. Every line in the file is complete:
// when a write is cut short (ENOSPC), the partial line is truncated away.
//
// The sink holds an exclusive flock on the file it writes, so a second
// writer — another daemon, or another sink of this one — is refused with
// an error naming the holder's pid (lines of two writers would
// interleave). The lock is on the open file: a rotation closes it
// (releasing the lock) before it renames it and locks the new file; a
// reopen (SIGUSR1) closes the renamed file and locks the path's new one,
// or, when another process holds that, counts lines as write errors and
// tries again at the next write; a reload's replacement sink for the same
// path shares the open file of the sink it replaces (Takeover), so it is
// not refused by the daemon's own lock.
type File struct {
	cfg      FileConfig
	enc      *event.Encoder
	counters *Counters
	log      *zap.Logger

	// f is the open file. Only the writing goroutine sets it (under mu);
	// mu lets another goroutine (a reload's Takeover) read it.
	mu     sync.Mutex
	f      *os.File
	size   int64 // bytes in the current file
	buf    []byte
	lines  int
	tc     event.TimeCache
	reopen atomic.Bool
	failed bool // in a write-error episode
	// ctx is the runner's, from the last Flush: under OnErrorBlock the
	// retry loop gives up when it ends (shutdown out of time).
	ctx context.Context
}

// NewFile opens (creating it and its directory) the file to append to.
func NewFile(cfg FileConfig, enc *event.Encoder, c *Counters, log *zap.Logger) (*File, error) {
	if cfg.Mode == 0 {
		cfg.Mode = 0o640
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 500 * time.Millisecond
	}
	s := &File{cfg: cfg, enc: enc, counters: c, log: log, buf: make([]byte, 0, 2*streamFlushBytes), ctx: context.Background()}
	if t := cfg.Takeover; t != nil {
		s.cfg.Takeover = nil // only for this first open
		if f := t.share(cfg.Path); f != nil {
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("file sink: %w", err)
			}
			// No tail repair: the sink it replaces still appends whole lines.
			s.setFile(f, st.Size())
			return s, nil
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// ProbeFile does what a file sink does to its path when it starts —
// create the missing directories and the file, open it for appending and
// take its lock — then closes it again, changing nothing in the file, not
// even its mode (cnbridged check). It leaves what it created for the
// caller to remove.
func ProbeFile(cfg FileConfig) error {
	if cfg.Mode == 0 {
		cfg.Mode = 0o640
	}
	f, _, err := openLocked(cfg.Path, cfg.Mode, false)
	if err != nil {
		return err
	}
	return f.Close()
}

// openLocked opens path as the sink does: its directories created, the
// file created with mode, for appending, a regular file (not through a
// symlink) and locked. With chmod, an empty file is given mode whatever
// the umask is.
func openLocked(path string, mode os.FileMode, chmod bool) (*os.File, os.FileInfo, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("file sink: %w", err)
	}
	// Read-write: the torn-tail repair reads the file's end.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("file sink: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("file sink: %s is not a regular file", path)
	}
	if err := filelock.Lock(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("file sink: %w: two writers would interleave their lines", err)
	}
	if chmod && st.Size() == 0 && st.Mode().Perm() != mode {
		// A new file: set the mode whatever the umask is.
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("file sink: %w", err)
		}
	}
	return f, st, nil
}

// setFile makes f (of size bytes) the file written. Only the writing
// goroutine calls it.
func (s *File) setFile(f *os.File, size int64) {
	s.mu.Lock()
	s.f, s.size = f, size
	s.mu.Unlock()
}

// closeFile closes the file written, if any (under mu: share may be
// duplicating it).
func (s *File) closeFile() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// share returns a duplicate of the open file when it is path's file now,
// else nil: the duplicate shares the open file description, and so the
// lock. Safe to call from any goroutine.
func (s *File) share(path string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	var have, now unix.Stat_t
	if unix.Fstat(int(s.f.Fd()), &have) != nil || unix.Stat(path, &now) != nil || have.Dev != now.Dev || have.Ino != now.Ino {
		return nil
	}
	fd, err := unix.FcntlInt(s.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

func (s *File) open() error {
	f, st, err := openLocked(s.cfg.Path, s.cfg.Mode, true)
	if err != nil {
		return err
	}
	size := st.Size()
	cut, err := repairTail(f, size)
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: %s: repairing a torn last line: %w", s.cfg.Path, err)
	}
	if cut > 0 {
		s.log.Warn("file sink: the file's last line was torn (no trailing newline); truncated it to the last complete line",
			zap.String("path", s.cfg.Path), zap.Int64("bytes_cut", cut))
		size -= cut
	}
	s.setFile(f, size)
	return nil
}

// repairTail truncates f, of size bytes, back to just after its last
// newline when it does not end in one (an earlier writer crashed, or the
// disk filled, mid-line), so that the next record starts on a fresh line
// instead of being glued to the fragment. It returns the bytes cut.
func repairTail(f *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return 0, nil
	}
	buf := make([]byte, 64<<10)
	keep := int64(0) // no newline at all: the whole file is one fragment
	for end := size; end > 0; {
		n := min(int64(len(buf)), end)
		chunk := buf[:n]
		if _, err := f.ReadAt(chunk, end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			keep = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	return size - keep, nil
}

// Reopen makes the sink close and reopen its path before its next write,
// for logrotate's rename-then-signal flow. Safe to call from any goroutine.
func (s *File) Reopen() { s.reopen.Store(true) }

// Write buffers one line, rotating first when it would pass max_size_bytes.
func (s *File) Write(r *event.Record) error {
	if s.reopen.Load() {
		if err := s.doReopen(); err != nil {
			return err
		}
	}
	start := len(s.buf)
	s.buf = s.enc.AppendJSONCached(s.buf, r, &s.tc)
	s.lines++
	if s.cfg.MaxSizeBytes > 0 && s.size+int64(len(s.buf)) > s.cfg.MaxSizeBytes && s.size+int64(start) > 0 {
		// Write what came before this line to the current file, then rotate.
		line := len(s.buf) - start
		if err := s.writeOut(s.buf[:start], s.lines-1); err != nil {
			return err
		}
		copy(s.buf, s.buf[start:])
		s.buf, s.lines = s.buf[:line], 1
		if err := s.rotate(); err != nil {
			s.logFailure(err)
		}
	}
	if len(s.buf) >= streamFlushBytes {
		return s.Flush(s.ctx)
	}
	return nil
}

// Flush writes the buffered lines.
func (s *File) Flush(ctx context.Context) error {
	s.ctx = ctx
	if s.reopen.Load() {
		return s.doReopen()
	}
	err := s.writeOut(s.buf, s.lines)
	s.buf, s.lines = s.buf[:0], 0
	return err
}

// doReopen writes what was buffered before Reopen was called to the old
// file, then opens the path afresh.
func (s *File) doReopen() error {
	s.reopen.Store(false)
	err := s.writeOut(s.buf, s.lines)
	s.buf, s.lines = s.buf[:0], 0
	s.closeFile()
	if oerr := s.open(); oerr != nil {
		s.logFailure(oerr)
	} else {
		s.log.Info("file sink reopened", zap.String("path", s.cfg.Path))
	}
	return err
}

// writeOut writes b, which holds n complete lines. Under OnErrorBlock it
// retries until it succeeds; otherwise the lines not written are counted.
func (s *File) writeOut(b []byte, n int) error {
	for len(b) > 0 {
		written, err := s.write(b)
		if written > 0 {
			k := bytes.Count(b[:written], []byte{'\n'})
			s.counters.Sent.Add(float64(k))
			b, n = b[written:], n-k
		}
		if err == nil {
			if s.failed {
				s.failed = false
				s.log.Info("file sink writing again", zap.String("path", s.cfg.Path))
			}
			continue
		}
		s.logFailure(err)
		switch s.cfg.OnError {
		case OnErrorExit:
			s.counters.Failed.Add(float64(n))
			return fmt.Errorf("%w: %w", ErrFatal, err)
		case OnErrorBlock:
			if s.ctx.Err() != nil {
				s.counters.Failed.Add(float64(n))
				return nil
			}
			time.Sleep(s.cfg.RetryInterval)
			continue
		default:
			s.counters.Drop(DropWriteError, n)
			return nil
		}
	}
	return nil
}

// write appends whole lines of b and returns how many bytes of complete
// lines reached the file. A short write is cut back to the last complete
// line, so a reader never sees a torn line.
func (s *File) write(b []byte) (int, error) {
	if s.f == nil {
		if err := s.open(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.Write(b)
	if err == nil {
		s.size += int64(n)
		return n, nil
	}
	keep := bytes.LastIndexByte(b[:n], '\n') + 1
	if keep < n {
		if terr := s.f.Truncate(s.size + int64(keep)); terr != nil {
			err = errors.Join(err, fmt.Errorf("truncating torn line: %w", terr))
			// Reopen before the next write: open repairs the tail.
			s.closeFile()
		}
	}
	s.size += int64(keep)
	return keep, err
}

func (s *File) logFailure(err error) {
	if s.failed {
		return
	}
	s.failed = true
	s.log.Error("file sink cannot write; counting lines as dropped until it can", zap.String("path", s.cfg.Path), zap.Error(err))
}

// rotate renames path → path.1 → … → path.MaxFiles (the oldest is removed)
// and opens a new path.
func (s *File) rotate() error {
	s.closeFile()
	p := s.cfg.Path
	os.Remove(fmt.Sprintf("%s.%d", p, s.cfg.MaxFiles))
	for i := s.cfg.MaxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
	}
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file sink: rotate: %w", err)
	}
	return s.open()
}

// Close flushes and closes the file.
func (s *File) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if cerr := s.closeFile(); cerr != nil && err == nil {
		err = fmt.Errorf("file sink: %w", cerr)
	}
	return err
}
