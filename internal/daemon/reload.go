package daemon

import (
	"context"
	"errors"
	"fmt"
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

// Reload loads the config again and applies it. An invalid config leaves
// the running one in place; every problem is logged.
func (d *Daemon) Reload(ctx context.Context) error {
	if d.opts.Load == nil {
		return errors.New("reload: no config loader")
	}
	cfg, err := d.opts.Load()
	if err == nil {
		err = d.Apply(ctx, cfg)
	} else {
		for _, line := range strings.Split(err.Error(), "\n") {
			d.log.Error("config rejected; the running config stays", zap.String("problem", line))
		}
	}
	if err != nil {
		d.reload.successful.Set(0)
		d.reload.total.WithLabelValues("failure").Inc()
		return err
	}
	d.reload.successful.Set(1)
	d.reload.lastOK.SetToCurrentTime()
	d.reload.total.WithLabelValues("success").Inc()
	d.log.Info("config reloaded", zap.String("config", displaySource(cfg.Source)))
	return nil
}

// Apply makes the running daemon match cfg without restarting: sinks
// started, reconfigured or drained and removed; the routing table swapped
// whole; groups joined or left on the open socket; the process event
// filter re-sent. Keys that need a restart are reported in the log.
func (d *Daemon) Apply(ctx context.Context, cfg *config.Config) error {
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if cfg.Host != old.Host {
		return errors.New("host: changing it needs a restart")
	}
	for _, k := range restartKeys(old, cfg) {
		d.log.Warn("config key changed but applies only after a restart", zap.String("key", k))
	}
	retire, err := d.applySinks(cfg)
	if err != nil {
		return err
	}
	plan, err := d.buildPlan(cfg)
	if err != nil {
		return err
	}
	var errs []error
	hadProc := slices.Contains(listenGroups(old), listener.ProcGroup)
	hasProc := slices.Contains(listenGroups(cfg), listener.ProcGroup)
	if err := d.lis.SetGroups(listenGroups(cfg)); err != nil {
		errs = append(errs, err)
	}
	mask, _, _ := procMask(cfg)
	if err := d.lis.SetProcMask(ctx, mask); err != nil {
		errs = append(errs, fmt.Errorf("listener.proc_events: %w", err))
	}
	switch {
	case hasProc && !hadProc:
		if err := d.lis.Subscribe(ctx); err != nil {
			errs = append(errs, err)
		}
	case hadProc && !hasProc:
		if err := d.lis.Unsubscribe(); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Listener.ReceiveBufferBytes != old.Listener.ReceiveBufferBytes {
		if err := d.lis.SetReceiveBuffer(cfg.Listener.ReceiveBufferBytes); err != nil {
			errs = append(errs, err)
		}
	}
	d.bridge.SetPlan(plan)
	rctx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
	d.retireSinks(rctx, retire)
	cancel()
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	return errors.Join(errs...)
}

// restartKeys lists changed keys that a reload does not apply.
func restartKeys(a, b *config.Config) []string {
	var keys []string
	if a.Metrics.Listen != b.Metrics.Listen {
		keys = append(keys, "metrics.listen")
	}
	if a.Ledger != b.Ledger {
		keys = append(keys, "ledger")
	}
	if a.Tap != b.Tap {
		keys = append(keys, "tap")
	}
	if a.Listener.BatchSize != b.Listener.BatchSize {
		keys = append(keys, "listener.batch_size")
	}
	if a.Log != b.Log {
		keys = append(keys, "log")
	}
	if a.ProcessTable != b.ProcessTable || a.EnrichMaxCmdlineBytes != b.EnrichMaxCmdlineBytes || a.EnrichQueueSize != b.EnrichQueueSize ||
		!slices.Equal(a.EnrichRedact, b.EnrichRedact) {
		keys = append(keys, "enrich_*")
	}
	if !slices.EqualFunc(a.Requests, b.Requests, func(x, y config.Request) bool {
		return x.Subject == y.Subject && x.ID == y.ID && x.Group == y.Group && x.Timeout == y.Timeout
	}) {
		keys = append(keys, "requests")
	}
	return keys
}
