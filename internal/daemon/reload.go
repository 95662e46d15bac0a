package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
)

type reloadMetrics struct {
	successful prometheus.Gauge
	lastOK     prometheus.Gauge
	total      *prometheus.CounterVec
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cnbridged_config_last_reload_successful",
			Help: "1 when the last config load (at start or reload) was applied, 0 when it was rejected.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cnbridged_config_last_reload_success_timestamp_seconds",
			Help: "When the config was last applied successfully.",
		}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_config_reloads_total",
			Help: "Config reloads by result (success, failure).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.successful, m.lastOK, m.total)
	m.successful.Set(1)
	m.lastOK.SetToCurrentTime()
	m.total.WithLabelValues("success")
	m.total.WithLabelValues("failure")
	return m
}

// Reload loads the config again and applies it, all or nothing: when
// anything fails, the running config stays whole, every reason is logged
// at error level with its key, systemd gets STATUS= and the metrics say
// so. A successful reload logs what changed.
func (d *Daemon) Reload(ctx context.Context) error {
	if d.opts.Load == nil {
		return errors.New("reload: no config loader")
	}
	cfg, err := d.opts.Load()
	if err == nil {
		err = d.Apply(ctx, cfg)
	}
	if err != nil {
		lines := strings.Split(err.Error(), "\n")
		for _, line := range lines {
			key, problem := splitKey(line)
			d.log.Error("reload failed; the running config stays", zap.String("key", key), zap.String("problem", problem))
		}
		d.opts.Notify(fmt.Sprintf("STATUS=reload failed, running the previous config: %s", lines[0]))
		d.reload.successful.Set(0)
		d.reload.total.WithLabelValues("failure").Inc()
		return err
	}
	d.opts.Notify("STATUS=running; config reloaded from " + displaySource(cfg.Source))
	d.reload.successful.Set(1)
	d.reload.lastOK.SetToCurrentTime()
	d.reload.total.WithLabelValues("success").Inc()
	return nil
}

// splitKey splits "key: problem" as config errors and Apply's errors
// read; the key is "" when the line names none.
func splitKey(line string) (key, problem string) {
	// A config problem may start with its source ("file.yaml:12: ").
	rest := line
	for range 2 {
		k, p, ok := strings.Cut(rest, ": ")
		if !ok || strings.ContainsAny(k, " \"") {
			break
		}
		if strings.ContainsAny(k, "/:") { // a source, not a key
			rest = p
			continue
		}
		return k, p
	}
	return "", line
}

// Apply makes the running daemon match cfg without restarting, all or
// nothing. Everything cfg needs is built first: the new and changed sinks
// are started, the routing plan compiled, the socket's receive buffer,
// groups, process event filter and subscription set. Only then is the plan
// swapped and the removed and replaced sinks drained. When a step fails,
// the steps before it are undone and the running config stays.
func (d *Daemon) Apply(ctx context.Context, cfg *config.Config) error {
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if err := refused(old, cfg); err != nil {
		return err
	}
	if err := requestsUnchanged(old, cfg); err != nil {
		return err
	}
	for _, k := range restartKeys(old, cfg) {
		d.log.Warn("config key changed but applies only after a restart", zap.String("key", k))
	}
	ch, err := d.prepareSinks(cfg)
	if err != nil {
		return err
	}
	plan, err := d.buildPlan(cfg, ch.next)
	if err != nil {
		d.abortSinks(ch)
		return err
	}
	if err := d.applyListener(ctx, old, cfg); err != nil {
		d.abortSinks(ch)
		return err
	}
	d.commitSinks(ch)
	oldPlan := d.bridge.SetPlan(plan)
	d.lis.SetPriority(readerPriority(cfg))
	if len(ch.retire) > 0 || oldPlan.Stages != nil {
		// No batch may reach a retired sink: wait for the reader to be
		// done with the old plan, but never longer than shutdown_timeout
		// or a stop (a stalled when_full: block sink can hold it). Then
		// the old routes' selection stages are flushed to their sinks
		// (open lives, suppression counts): the new plan's start empty.
		rctx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
		if err := d.bridge.Release(rctx, oldPlan); err != nil {
			d.log.Warn("the reader is blocked on a full sink; retiring sinks anyway (what it offers them is counted dropped, reason shutdown)", zap.Error(err))
		}
		if err := d.bridge.FlushStages(rctx, oldPlan); err != nil {
			d.log.Warn("flushing the old routes' where, rate_limit and fold stages took too long; retiring sinks anyway (what reaches them later is counted dropped, reason shutdown)", zap.Error(err))
		}
		d.retireSinks(rctx, ch.retire)
		cancel()
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.logChanges(old, cfg, ch)
	return nil
}

// applyListener sets the socket to cfg's receive buffer, groups, process
// event filter and subscription, undoing what it did when a step fails.
func (d *Daemon) applyListener(ctx context.Context, old, cfg *config.Config) error {
	oldGroups, newGroups := listenGroups(old), listenGroups(cfg)
	oldMask, _, _ := procMask(old)
	newMask, _, _ := procMask(cfg)
	var undo []func()
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}
	if cfg.Listener.ReceiveBufferBytes != old.Listener.ReceiveBufferBytes {
		if err := d.lis.SetReceiveBuffer(cfg.Listener.ReceiveBufferBytes); err != nil {
			return fail(fmt.Errorf("listener.receive_buffer_bytes: %w", err))
		}
		undo = append(undo, func() { d.lis.SetReceiveBuffer(old.Listener.ReceiveBufferBytes) })
		d.warnReceiveBuffer(cfg.Listener.ReceiveBufferBytes)
	}
	if err := d.lis.SetGroups(newGroups); err != nil {
		d.lis.SetGroups(oldGroups)
		return fail(fmt.Errorf("listener.groups: %w", err))
	}
	undo = append(undo, func() { d.lis.SetGroups(oldGroups) })
	if err := d.lis.SetProcMask(ctx, newMask); err != nil {
		d.lis.SetProcMask(ctx, oldMask)
		return fail(fmt.Errorf("listener.proc_events: %w", err))
	}
	undo = append(undo, func() { d.lis.SetProcMask(ctx, oldMask) })
	hadProc := slices.Contains(oldGroups, listener.ProcGroup)
	hasProc := slices.Contains(newGroups, listener.ProcGroup)
	switch {
	case hasProc && !hadProc:
		if err := d.lis.Subscribe(ctx); err != nil {
			return fail(fmt.Errorf("listener.groups: subscribing to process events: %w", err))
		}
	case hadProc && !hasProc:
		if err := d.lis.Unsubscribe(); err != nil {
			return fail(fmt.Errorf("listener.groups: unsubscribing from process events: %w", err))
		}
	}
	return nil
}

// refused names each changed key that a reload refuses (reload:"refuse"
// in config.Config), such as host: every sink stamps it.
func refused(old, cfg *config.Config) error {
	var errs []error
	for _, c := range config.Changes(old, cfg, config.ReloadRefuse) {
		a, aok := c.Old.(string)
		b, bok := c.New.(string)
		if aok && bok {
			errs = append(errs, fmt.Errorf("%s: %q → %q: changing it needs a restart", c.Key, a, b))
		} else {
			errs = append(errs, fmt.Errorf("%s: changing it needs a restart", c.Key))
		}
	}
	return errors.Join(errs...)
}

// requestsUnchanged rejects a reload that changes the NATS sink connector
// requests use: requests keep that connection for the daemon's life, so
// changing the sink needs a restart (requests themselves are
// reload:"refuse").
func requestsUnchanged(old, cfg *config.Config) error {
	var errs []error
	seen := map[string]bool{}
	for _, r := range old.Requests {
		if seen[r.Sink] {
			continue
		}
		seen[r.Sink] = true
		if a, b := old.Sinks[r.Sink], cfg.Sinks[r.Sink]; b == nil || !reflect.DeepEqual(*a, *b) {
			errs = append(errs, fmt.Errorf("sinks.%s: connector requests use this sink's NATS connection; changing or removing the sink needs a restart", r.Sink))
		}
	}
	return errors.Join(errs...)
}

// logChanges logs what a successful reload changed.
func (d *Daemon) logChanges(old, cfg *config.Config, ch *sinkChange) {
	og, ng := listenGroups(old), listenGroups(cfg)
	var joined, left []int
	for _, g := range ng {
		if !slices.Contains(og, g) {
			joined = append(joined, g)
		}
	}
	for _, g := range og {
		if !slices.Contains(ng, g) {
			left = append(left, g)
		}
	}
	d.log.Info("config reloaded",
		zap.String("config", displaySource(cfg.Source)),
		zap.Ints("groups_joined", joined),
		zap.Ints("groups_left", left),
		zap.Strings("sinks_added", ch.added),
		zap.Strings("sinks_changed", ch.changed),
		zap.Strings("sinks_removed", ch.removed),
		zap.Bool("routes_changed", !reflect.DeepEqual(old.Routes, cfg.Routes)),
		zap.Int("routes", len(cfg.Routes)),
		zap.Bool("proc_events_changed", !slices.Equal(old.Listener.ProcEvents, cfg.Listener.ProcEvents)))
}

// restartKeys lists changed keys that a reload does not apply: those
// config.Config declares reload:"restart".
func restartKeys(a, b *config.Config) []string {
	var keys []string
	for _, c := range config.Changes(a, b, config.ReloadRestart) {
		keys = append(keys, c.Key)
	}
	return keys
}
