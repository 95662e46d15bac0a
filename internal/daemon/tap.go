package daemon

import (
	"context"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/tap"
)

// TapSinkName is the tap runner's name (in its logs). Sink names in the
// config cannot start with "_", so it never collides with one.
const TapSinkName = "_tap"

// tapQueueMaxBytes bounds the memory the tap's queue holds.
const tapQueueMaxBytes = 16 << 20

// startTap serves the tap socket (tap.socket) as a sink behind its own
// bounded drop-newest queue, in a slot of its own that every route
// includes (buildPlan), so it sees every routed record, enriched, and can
// never slow the reader. A socket that cannot be served is logged and the
// daemon runs without it: the live view must not stop the pipeline. The
// socket is set up once; a reload does not move it.
func (d *Daemon) startTap(cfg *config.Config) (stop func()) {
	if cfg.Tap.Socket == "" {
		return func() {}
	}
	log := d.log.Named("tap")
	met := tap.NewMetrics(d.reg) // exported even when the socket cannot be served
	// The tap's runner counts into sink metrics of its own, not the
	// daemon's: the tap is not a sink to alert on or to sum with the
	// others. What its queue drops is exported as a tap metric.
	tapReg := prometheus.NewRegistry()
	sinkMet := sinks.NewMetrics(tapReg)
	d.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cnbridged_tap_queue_dropped_total",
		Help: "Records the tap's own queue (tap.queue_size) dropped because the tap fell behind the reader: no tap client got them.",
	}, func() float64 { return gatheredSum(tapReg, "cnbridged_sink_dropped_total") }))
	srv, err := tap.Listen(tap.ServerConfig{
		Path:         cfg.Tap.Socket,
		Mode:         os.FileMode(cfg.Tap.Mode),
		ClientBuffer: cfg.Tap.ClientBuffer,
		Metrics:      met,
		Queries: func(ctx context.Context, line []byte) []byte {
			return d.answerLocal(ctx, line, cfg.Host)
		},
	}, cfg.Host, d.enc, log)
	if err != nil {
		log.Error("tap socket not served; running without it", zap.Error(err))
		return func() {}
	}
	d.mu.Lock()
	slot := -1
	for i := len(d.slots) - 1; i >= 0; i-- {
		if d.slots[i] == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		d.mu.Unlock()
		log.Error("tap socket not served: every sink slot is taken")
		return func() {}
	}
	r := sinks.NewRunner(sinks.RunnerConfig{
		Name:          TapSinkName,
		Slot:          slot,
		QueueSize:     cfg.Tap.QueueSize,
		QueueMaxBytes: tapQueueMaxBytes,
		WhenFull:      sinks.DropNewest,
	}, srv, sinkMet, d.log)
	d.slots[slot] = r
	d.tap = r
	d.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	runDone, srvDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); r.Run(ctx) }()
	go func() { defer close(srvDone); srv.Run(ctx) }()
	log.Info("serving the tap", zap.String("socket", cfg.Tap.Socket), zap.Stringer("mode", cfg.Tap.Mode))
	return func() {
		r.Stop()
		<-runDone
		cancel()
		<-srvDone
	}
}

// gatheredSum sums the samples of the metric name in reg.
func gatheredSum(reg *prometheus.Registry, name string) float64 {
	fams, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
