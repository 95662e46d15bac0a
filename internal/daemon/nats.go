package daemon

import (
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

// newNATS builds a NATS sink. d.mu is held (newSink is called from
// applySinks), which also guards the NATS metrics, registered once per
// daemon on first use so that a second sink or a reload never registers
// the same names again.
func (d *Daemon) newNATS(name string, sc *sinks.NATSSinkConfig, c *sinks.Counters, log *zap.Logger) (sinks.Sink, error) {
	if d.natsMet == nil {
		d.natsMet = sinks.NewNATSMetrics(d.reg)
	}
	cfg := sc.NATSConfig(name, d.cfg.Host)
	cfg.Context = d.sinkCtx
	cfg.Body.Product = d.product
	return sinks.NewNATS(cfg, d.enc, c, d.natsMet, log)
}

// newOTLP builds an OTLP sink; d.mu is held, which also guards the OTLP
// metrics, registered with the first OTLP sink.
func (d *Daemon) newOTLP(name string, sc *sinks.OTLPSinkConfig, c *sinks.Counters, log *zap.Logger) (sinks.Sink, error) {
	if d.otlpMet == nil {
		d.otlpMet = sinks.NewOTLPMetrics(d.reg)
	}
	cfg := sc.OTLPConfig(name, d.cfg.Host)
	cfg.Context = d.sinkCtx
	cfg.Body.Product = d.product
	return sinks.NewOTLP(cfg, d.enc, c, d.otlpMet, log)
}
