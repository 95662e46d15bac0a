package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/filelock"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/ratelog"
	"github.com/cnbridged/cnbridged/internal/statefile"
)

// stateInterval is how often the restart trace's state.json is saved
// while running: after a SIGKILL its time (the gap's "from") is at most
// this much before the daemon really stopped listening.
const stateInterval = 2 * time.Second

// StateLockName is the file in state_dir a running daemon holds an
// exclusive flock on.
const StateLockName = ".lock"

const (
	nsLastPIDPath = "/proc/sys/kernel/ns_last_pid"
	pidMaxPath    = "/proc/sys/kernel/pid_max"
)

// restartTrace keeps the state files in state_dir while the daemon runs.
type restartTrace struct {
	dir  string
	boot string
	log  *zap.Logger
	// saveErrs keeps a failing save (full or read-only state_dir) to one
	// warning a minute.
	saveErrs *ratelog.Limiter
	lock     *os.File // flock: one daemon per state_dir
	seqs     *statefile.Seqs

	mu      sync.Mutex // metrics, save
	metrics string     // the metrics endpoint's bound address

	stop chan struct{}
	done sync.WaitGroup
}

// openRestartTrace reads what a previous daemon of this boot left in dir,
// hands it to b (ledger seeds and the gap record), and starts saving this
// daemon's state. A missing, foreign-boot or corrupt trace is logged once
// and is no error; nor is a state_dir that cannot be used (the daemon runs
// without a trace then). Call it before the reader starts.
func openRestartTrace(dir string, b *bridge.Bridge, log *zap.Logger, now time.Time) *restartTrace {
	log = log.Named("restart-trace")
	t, err := startTrace(dir, log)
	if err != nil {
		log.Warn("no restart trace this run", zap.String("state_dir", dir), zap.Error(err))
		return nil
	}
	seqs, prevStreams, prevErr, err := statefile.OpenSeqs(dir, t.boot)
	if err != nil {
		log.Warn("no restart trace this run", zap.String("state_dir", dir), zap.Error(err))
		t.lock.Close()
		return nil
	}
	t.seqs = seqs
	b.RecordSeqs(seqs)

	prev, stErr := statefile.Read(dir)
	if stErr == nil && prev.BootID != t.boot {
		stErr = fmt.Errorf("%w (boot %s)", statefile.ErrOtherBoot, prev.BootID)
	}
	var gap *event.Gap
	if stErr == nil {
		gap = &event.Gap{From: prev.Time.UnixNano(), To: now.UnixNano(), CleanStop: prev.Clean}
		if last, err := readUint(nsLastPIDPath); err == nil {
			pidMax := prev.PIDMax
			if m, err := readUint(pidMaxPath); err == nil {
				pidMax = m
			}
			gap.PIDsAllocated, gap.PIDsWrapped = statefile.PIDsAllocated(prev.LastPID, last, pidMax)
		}
	}
	streams := make([]bridge.KernelStream, 0, len(prevStreams))
	for _, s := range prevStreams {
		streams = append(streams, bridge.KernelStream{ID: cnmsg.ID{Idx: s.Idx, Val: s.Val}, CPU: s.CPU, Seq: s.Seq})
	}
	b.Resume(streams, gap, now)
	switch {
	case gap != nil:
		log.Info("restarted in the same boot: sent a not_listening gap record; kernel streams continue from the last seqs read",
			zap.Time("from", prev.Time), zap.Bool("clean_stop", prev.Clean), zap.Uint64("pids_allocated", gap.PIDsAllocated),
			zap.Int("streams", len(streams)), zap.NamedError("seqs", prevErr))
	default:
		log.Info("no restart trace from a previous daemon of this boot", zap.String("state_dir", dir),
			zap.NamedError("state", stErr), zap.NamedError("seqs", prevErr), zap.Int("streams", len(streams)))
	}
	t.save(false, now)
	t.stop = make(chan struct{})
	t.done.Add(1)
	go t.saveEvery(stateInterval)
	return t
}

func startTrace(dir string, log *zap.Logger) (*restartTrace, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	boot, err := procinfo.BootID("")
	if err != nil {
		return nil, fmt.Errorf("boot id: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, StateLockName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := filelock.Lock(lock); err != nil {
		lock.Close()
		if errors.Is(err, filelock.ErrHeld) {
			return nil, fmt.Errorf("another cnbridged uses this state_dir: %w", err)
		}
		return nil, err
	}
	return &restartTrace{dir: dir, boot: boot, log: log, lock: lock, saveErrs: ratelog.New(time.Minute, 1)}, nil
}

// ProbeStateDir does to dir what the restart trace does at start —
// create it, take its lock, write a file in it the way state.json is
// written, and open seqs.bin for writing if it exists — without changing
// the trace a previous daemon left (cnbridged check). It leaves the
// directory and its .lock, if it created them, for the caller to remove.
func ProbeStateDir(dir string) error {
	t, err := startTrace(dir, zap.NewNop())
	if err != nil {
		return err
	}
	defer t.lock.Close()
	f, err := os.CreateTemp(dir, ".check-*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, err = f.Write(statefile.Encode(statefile.State{BootID: t.boot, Time: time.Now()}))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	os.Remove(f.Name())
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	seqs, err := os.OpenFile(filepath.Join(dir, statefile.SeqsName), os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		seqs.Close()
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("seq table: %w", err)
	}
	return nil
}

func (t *restartTrace) saveEvery(interval time.Duration) {
	defer t.done.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.save(false, now)
		}
	}
}

// setMetrics records the metrics endpoint's bound address and saves it at
// once: health and stats read it to reach this daemon.
func (t *restartTrace) setMetrics(addr string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.metrics = addr
	t.mu.Unlock()
	t.save(false, time.Now())
}

// save writes state.json; errors are logged (at most once a minute).
func (t *restartTrace) save(clean bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := statefile.State{BootID: t.boot, Time: now, Clean: clean, PID: os.Getpid(), Metrics: t.metrics}
	if v, err := readUint(nsLastPIDPath); err == nil {
		st.LastPID = v
	}
	if v, err := readUint(pidMaxPath); err == nil {
		st.PIDMax = v
	}
	if err := statefile.Write(t.dir, st); err != nil && (clean || t.saveErrs.Allow("save", now)) {
		t.log.Warn("saving the restart trace (logged at most once a minute while it fails)", zap.Error(err))
	}
}

// close stops the periodic saves and, for a requested stop, writes the
// final state with the time the daemon stopped listening.
func (t *restartTrace) close(clean bool, stopped time.Time) {
	if t == nil {
		return
	}
	close(t.stop)
	t.done.Wait()
	if clean {
		t.save(true, stopped)
	}
	if err := t.seqs.Close(); err != nil {
		t.log.Warn("closing the seq table", zap.Error(err))
	}
	t.lock.Close()
}

func readUint(path string) (uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(v), err
}

// Runtime is what a running daemon recorded about itself in its state_dir.
type Runtime struct {
	PID int
	// Metrics is the address its metrics endpoint is bound to ("" when
	// it serves none, or has not yet).
	Metrics string
	// Path is the state file it was read from.
	Path string
}

// ReadRuntime returns what the daemon running with state_dir dir recorded
// about itself. The error says why there is none: no trace, a trace of
// another boot, a clean stop, or a daemon that died (its pid no longer
// holds state_dir's lock).
func ReadRuntime(dir string) (Runtime, error) {
	rt := Runtime{Path: filepath.Join(dir, statefile.StateName)}
	st, err := statefile.Read(dir)
	if err != nil {
		return rt, err
	}
	at := st.Time.Local().Format(time.RFC3339)
	if boot, err := procinfo.BootID(""); err == nil && st.BootID != boot {
		return rt, fmt.Errorf("%s was written in another boot", rt.Path)
	}
	if st.Clean {
		return rt, fmt.Errorf("%s: its daemon (pid %d) stopped at %s", rt.Path, st.PID, at)
	}
	if st.PID == 0 {
		return rt, fmt.Errorf("%s names no pid (an older cnbridged wrote it)", rt.Path)
	}
	// A running daemon holds state_dir's lock: a pid that does not died
	// (and the number may be another process's now).
	if f, err := os.Open(filepath.Join(dir, StateLockName)); err == nil {
		holder, herr := filelock.Holder(f)
		f.Close()
		if herr == nil && holder != st.PID {
			return rt, fmt.Errorf("%s: its daemon (pid %d) is gone; its last save was at %s", rt.Path, st.PID, at)
		}
	} else if errors.Is(unix.Kill(st.PID, 0), unix.ESRCH) {
		return rt, fmt.Errorf("%s: its daemon (pid %d) is gone; its last save was at %s", rt.Path, st.PID, at)
	}
	rt.PID, rt.Metrics = st.PID, st.Metrics
	return rt, nil
}
