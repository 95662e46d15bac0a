package sinks

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// OTLPMetrics collects the export metrics of every live OTLP sink. It is
// registered once per registry; sinks add themselves when they start and
// leave when they close (as NATSMetrics: a reload that replaces a sink
// leaves no stale series and registers no name twice).
type OTLPMetrics struct {
	mu      sync.Mutex
	live    map[string]*OTLP
	exports *prometheus.Desc
}

// NewOTLPMetrics registers the OTLP sink metrics with reg.
func NewOTLPMetrics(reg prometheus.Registerer) *OTLPMetrics {
	m := &OTLPMetrics{
		live: make(map[string]*OTLP),
		exports: prometheus.NewDesc("cnbridged_otlp_exports_total",
			"Export attempts of an OTLP sink by outcome: ok (every record taken), partial (some rejected: counted failed), retry (failed and sent again), failed (refused: its records counted failed). Restarts at 0 when a reload replaces the sink.",
			[]string{"sink", "result"}, nil),
	}
	reg.MustRegister(m)
	return m
}

// Describe implements prometheus.Collector.
func (m *OTLPMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.exports }

// Collect implements prometheus.Collector.
func (m *OTLPMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.live {
		for i, r := range otlpResultNames {
			ch <- prometheus.MustNewConstMetric(m.exports, prometheus.CounterValue, float64(s.exports[i].Load()), name, r)
		}
	}
}

func (m *OTLPMetrics) add(s *OTLP) {
	m.mu.Lock()
	m.live[s.cfg.Name] = s
	m.mu.Unlock()
}

func (m *OTLPMetrics) remove(s *OTLP) {
	m.mu.Lock()
	if m.live[s.cfg.Name] == s {
		delete(m.live, s.cfg.Name)
	}
	m.mu.Unlock()
}
