package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// reopener is implemented by sinks that reopen their files on SIGUSR1.
type reopener interface{ Reopen() }

// Reopen asks every file sink to reopen its file (logrotate).
func (d *Daemon) Reopen() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sinks {
		if r, ok := s.runner.Sink().(reopener); ok {
			r.Reopen()
		}
	}
	d.log.Info("file sinks will reopen their files")
}

// newSink builds the sink a config section describes.
func (d *Daemon) newSink(name string, sc *config.Sink, c *sinks.Counters) (sinks.Sink, error) {
	log := d.log.Named("sink").With(zap.String("sink", name))
	switch t := sc.Settings.(type) {
	case *sinks.StdoutConfig:
		if t.Format == sinks.FormatText {
			return sinks.NewTextStream(d.opts.Stdout, d.enc, &event.TextFormatter{Color: d.opts.StdoutColor, Location: time.Local, Width: d.opts.StdoutWidth}, c), nil
		}
		return sinks.NewStream(d.opts.Stdout, d.enc, c), nil
	case *sinks.FileSinkConfig:
		fc := t.FileConfig()
		fc.Takeover = d.fileWriting(t.Path)
		return sinks.NewFile(fc, d.enc, c, log)
	case *sinks.NATSSinkConfig:
		return d.newNATS(name, t, c, log)
	}
	return nil, fmt.Errorf("sink %s: unknown type %q", name, sc.Type)
}

// fileWriting returns the running file sink that writes path, if any: a
// reload's new or changed sink for the same path takes its open file (and
// lock) over instead of being refused by it. d.mu is held.
func (d *Daemon) fileWriting(path string) *sinks.File {
	for _, e := range d.sinks {
		if fc := e.cfg.File(); fc != nil && fc.Path == path {
			if f, ok := e.runner.Sink().(*sinks.File); ok {
				return f
			}
		}
	}
	return nil
}

// sinkChange is what a config needs of the sinks, built before anything
// is swapped: the new and changed sinks already started in free slots.
type sinkChange struct {
	next                    map[string]*sinkEntry
	started                 []*sinkEntry // new runners: stopped again by abortSinks
	retire                  []*sinkEntry // removed and replaced: stopped after the swap
	added, changed, removed []string
}

// applySinks makes the running sinks match cfg at start: prepareSinks,
// then commitSinks.
func (d *Daemon) applySinks(cfg *config.Config) (retire []*sinkEntry, err error) {
	ch, err := d.prepareSinks(cfg)
	if err != nil {
		return nil, err
	}
	d.commitSinks(ch)
	return ch.retire, nil
}

// commitSinks makes ch's sinks the running ones.
func (d *Daemon) commitSinks(ch *sinkChange) {
	d.mu.Lock()
	d.sinks = ch.next
	d.mu.Unlock()
}

// abortSinks stops the sinks prepareSinks started and frees their slots:
// the running sinks stay as they were.
func (d *Daemon) abortSinks(ch *sinkChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopStarted(ch.started)
}

// stopStarted stops runners that never carried traffic; d.mu is held.
func (d *Daemon) stopStarted(started []*sinkEntry) {
	for _, e := range started {
		d.freeSlot(e.runner)
		e.runner.Stop()
		<-e.done
		if _, running := d.sinks[e.runner.Name()]; !running {
			d.sinkMet.Forget(e.runner.Name())
		}
	}
}

// prepareSinks starts the new and changed sinks of cfg (a changed sink
// gets a new runner in a free slot) without touching the running ones.
func (d *Daemon) prepareSinks(cfg *config.Config) (*sinkChange, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := &sinkChange{}
	fail := func(err error) (*sinkChange, error) {
		d.stopStarted(ch.started)
		return nil, err
	}
	next := make(map[string]*sinkEntry, len(cfg.Sinks))
	for _, name := range cfg.SinkNames() {
		sc := cfg.Sinks[name]
		old, had := d.sinks[name]
		if had && reflect.DeepEqual(old.cfg, *sc) {
			next[name] = old
			continue
		}
		if had {
			ch.changed = append(ch.changed, name)
		} else {
			ch.added = append(ch.added, name)
		}
		slot := -1
		for i, r := range d.slots {
			if r == nil {
				slot = i
				break
			}
		}
		if slot < 0 {
			return fail(fmt.Errorf("sinks.%s: no free sink slot", name))
		}
		counters := d.sinkMet.Counters(name)
		s, err := d.newSink(name, sc, counters)
		if err != nil {
			if !had {
				d.sinkMet.Forget(name) // never started: not in the stop summary
			}
			return fail(fmt.Errorf("sinks.%s: %w", name, err))
		}
		var flush time.Duration
		if f := sc.File(); f != nil {
			flush = f.FlushInterval
		}
		r := sinks.NewRunner(sinks.RunnerConfig{
			Name:          name,
			Slot:          slot,
			QueueSize:     sc.QueueSize,
			QueueMaxBytes: sc.QueueMaxBytes,
			WhenFull:      sc.WhenFull,
			FlushInterval: flush,
		}, s, d.sinkMet, d.log)
		e := &sinkEntry{cfg: *sc, runner: r, done: make(chan struct{})}
		d.slots[slot] = r
		ch.started = append(ch.started, e)
		next[name] = e
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer close(e.done)
			if err := r.Run(d.sinkCtx); err != nil {
				d.log.Error("sink stopped", zap.String("sink", name), zap.Error(err))
				if errors.Is(err, sinks.ErrFatal) {
					d.sinkErr <- err
				}
			}
		}()
		d.log.Info("sink started", zap.String("sink", name), zap.String("type", sc.Type), zap.Int("slot", slot))
	}
	for name, old := range d.sinks {
		if next[name] != old {
			ch.retire = append(ch.retire, old)
		}
		if _, kept := next[name]; !kept {
			ch.removed = append(ch.removed, name)
		}
	}
	slices.Sort(ch.removed)
	ch.next = next
	return ch, nil
}

// freeSlot forgets r's slot; d.mu must be held.
func (d *Daemon) freeSlot(r *sinks.Runner) {
	for i, s := range d.slots {
		if s == r {
			d.slots[i] = nil
		}
	}
}

// retireSinks stops sinks no plan refers to any more, draining them.
func (d *Daemon) retireSinks(ctx context.Context, retire []*sinkEntry) {
	for _, e := range retire {
		e.runner.Stop()
	}
	for _, e := range retire {
		select {
		case <-e.done:
		case <-ctx.Done():
		}
		d.mu.Lock()
		d.freeSlot(e.runner)
		if _, kept := d.sinks[e.runner.Name()]; !kept {
			d.sinkMet.Forget(e.runner.Name()) // removed, not reconfigured
		}
		d.mu.Unlock()
		d.log.Info("sink retired", zap.String("sink", e.runner.Name()))
	}
}

// stopSinks stops every sink and waits until they drained or soft passes;
// then runners count what they still hold as dropped (reason shutdown).
// A sink still stuck in a write at hard is abandoned: its queue is counted
// and the daemon goes on without it. It reports whether every sink
// drained by soft.
func (d *Daemon) stopSinks(soft, hard time.Time) bool {
	d.mu.Lock()
	runners := make([]*sinks.Runner, 0, len(d.sinks))
	for _, s := range d.sinks {
		s.runner.Stop()
	}
	for _, r := range d.slots {
		if r != nil {
			runners = append(runners, r) // retired ones still draining too
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	t := time.NewTimer(time.Until(soft))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	d.cancelSinks()
	t.Reset(time.Until(hard))
	select {
	case <-done:
		return false
	case <-t.C:
	}
	for _, r := range runners {
		if n := r.Abandon(); n > 0 {
			d.log.Error("sink stuck in a write at the shutdown deadline; abandoned, its records counted",
				zap.String("sink", r.Name()), zap.Int("records", n))
		}
	}
	return false
}
