package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
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
	switch sc.Type {
	case "stdout":
		if sc.Format == config.FormatText {
			return sinks.NewTextStream(d.opts.Stdout, d.enc, &event.TextFormatter{Color: d.opts.StdoutColor, Location: time.Local}, c), nil
		}
		return sinks.NewStream(d.opts.Stdout, d.enc, c), nil
	case "file":
		mode, _ := strconv.ParseUint(sc.Mode, 8, 32)
		onErr, err := sinks.ParseOnError(sc.OnError)
		if err != nil {
			return nil, err
		}
		return sinks.NewFile(sinks.FileConfig{
			Path:         sc.Path,
			Mode:         os.FileMode(mode),
			MaxSizeBytes: sc.MaxSizeBytes,
			MaxFiles:     sc.MaxFiles,
			OnError:      onErr,
		}, d.enc, c, log)
	case "nats":
		return d.newNATS(name, sc, c, log)
	}
	return nil, fmt.Errorf("sink %s: unknown type %q", name, sc.Type)
}

// applySinks makes the running sinks match cfg: new and changed sinks are
// started (a changed sink gets a new runner in a free slot), and the
// returned function stops the removed and replaced ones once the new plan
// is in place.
func (d *Daemon) applySinks(cfg *config.Config) (retire []*sinkEntry, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var started []*sinkEntry
	fail := func(err error) ([]*sinkEntry, error) {
		for _, e := range started {
			d.freeSlot(e.runner)
			e.runner.Stop()
			<-e.done
		}
		return nil, err
	}
	next := make(map[string]*sinkEntry, len(cfg.Sinks))
	for _, name := range cfg.SinkNames() {
		sc := cfg.Sinks[name]
		if old, ok := d.sinks[name]; ok && reflect.DeepEqual(old.cfg, *sc) {
			next[name] = old
			continue
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
			return fail(fmt.Errorf("sinks.%s: %w", name, err))
		}
		wf, _ := sinks.ParseWhenFull(sc.WhenFull)
		r := sinks.NewRunner(sinks.RunnerConfig{
			Name:          name,
			Slot:          slot,
			QueueSize:     sc.QueueSize,
			QueueMaxBytes: sc.QueueMaxBytes,
			WhenFull:      wf,
			FlushInterval: sc.FlushInterval,
		}, s, d.sinkMet, d.log)
		e := &sinkEntry{cfg: *sc, runner: r, done: make(chan struct{})}
		d.slots[slot] = r
		started = append(started, e)
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
			retire = append(retire, old)
		}
	}
	d.sinks = next
	return retire, nil
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

// stopSinks stops every sink and waits until they drained or ctx ends;
// then runners count what they still hold as dropped (reason shutdown). It
// reports whether every sink drained in time.
func (d *Daemon) stopSinks(ctx context.Context) bool {
	d.mu.Lock()
	for _, s := range d.sinks {
		s.runner.Stop()
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	d.cancelSinks()
	<-done
	return false
}
