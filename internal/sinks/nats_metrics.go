package sinks

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// NATSMetrics collects the connection metrics of every live NATS sink. It
// is registered once per registry; sinks add themselves when they start
// and leave when they close, so a reload that replaces a sink never leaves
// a stale series behind and never registers a name twice.
type NATSMetrics struct {
	mu         sync.Mutex
	live       map[string]*NATS
	reconnects *prometheus.Desc
	pending    *prometheus.Desc
	connected  *prometheus.Desc
}

// NewNATSMetrics registers the NATS sink metrics with reg.
func NewNATSMetrics(reg prometheus.Registerer) *NATSMetrics {
	m := &NATSMetrics{
		live: make(map[string]*NATS),
		reconnects: prometheus.NewDesc("cnbridged_nats_reconnects_total",
			"Times a NATS sink's connection came back after a disconnect (restarts at 0 when a reload replaces the sink).",
			[]string{"sink"}, nil),
		pending: prometheus.NewDesc("cnbridged_nats_pending_acks",
			"Messages a NATS sink holds that are not yet acknowledged (JetStream) or confirmed by a round trip (core NATS), including those held during an outage.",
			[]string{"sink"}, nil),
		connected: prometheus.NewDesc("cnbridged_nats_connected",
			"1 while a NATS sink is connected to a server.",
			[]string{"sink"}, nil),
	}
	reg.MustRegister(m)
	return m
}

// Describe implements prometheus.Collector.
func (m *NATSMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.reconnects
	ch <- m.pending
	ch <- m.connected
}

// Collect implements prometheus.Collector.
func (m *NATSMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.live {
		conn := 0.0
		if s.nc.IsConnected() {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(m.reconnects, prometheus.CounterValue, float64(s.reconnects.Load()), name)
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(s.held.Load()), name)
		ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, conn, name)
	}
}

// add makes s the sink reported under its name (a reload starts the new
// sink before it retires the old one).
func (m *NATSMetrics) add(s *NATS) {
	m.mu.Lock()
	m.live[s.cfg.Name] = s
	m.mu.Unlock()
}

func (m *NATSMetrics) remove(s *NATS) {
	m.mu.Lock()
	if m.live[s.cfg.Name] == s {
		delete(m.live, s.cfg.Name)
	}
	m.mu.Unlock()
}
