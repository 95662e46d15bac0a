// Package sinks publishes routed records: the Sink contract, the bounded
// queue and runner that sit between the kernel reader and every sink, and
// the stdout, file and NATS sinks.
package sinks

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Sink publishes records.
//
// Contract: a sink's runner calls Write and Flush from one goroutine, never
// concurrently. Write encodes or sends one record; the record and its data
// are valid only during the call. A sink counts what it publishes itself
// (Counters.Sent once the record is handed on: written to the file or
// stdout — in the kernel's page cache, not fsynced —, confirmed by a core
// NATS server's PONG, acknowledged by JetStream), and what it loses
// (Counters.Failed or Counters.Drop) — every record given to Write ends up
// in exactly one of those. Write returns an error only when the sink cannot
// go on at all (a file sink with on_error: exit); ordinary failures are
// counted, not returned. Flush pushes buffered records out; the runner
// calls it when its queue runs empty and at least every flush interval.
// Close is called once, after the last Write and Flush have returned: it
// flushes, waits for outstanding acknowledgements until ctx ends, counts
// whatever is still not delivered as failed, and releases resources.
type Sink interface {
	Write(r *event.Record) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// Readier is implemented by sinks whose readiness can change (a NATS sink
// while disconnected). Ready returns nil when the sink can publish.
type Readier interface {
	Ready() error
}

// Pender is implemented by sinks that hold records Write has returned for
// but that are not yet counted (a NATS sink's unacknowledged window and
// what it holds during an outage). Pending is called from any goroutine,
// also while Write blocks, and must not wait for it.
type Pender interface {
	Pending() int
}

// Metrics are the per-sink metric vectors shared by every sink.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]*Counters // by sink: a sink and its runner share one
	messages *prometheus.CounterVec
	drops    *prometheus.CounterVec
	queueLen *liveGauge
	queueCap *prometheus.GaugeVec
}

// NewMetrics registers the sink metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		counters: make(map[string]*Counters),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_sink_messages_total",
			Help: "Records handed to a sink, by outcome: sent (delivered), dropped (not attempted: queue full, outage buffer full, on_error drop) or failed (attempted and not delivered).",
		}, []string{"sink", "result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_sink_dropped_total",
			Help: "Dropped records by reason; their sum per sink equals cnbridged_sink_messages_total{result=\"dropped\"}.",
		}, []string{"sink", "reason"}),
		queueLen: &liveGauge{
			desc: prometheus.NewDesc("cnbridged_sink_queue_length",
				"Records waiting for a sink, read when scraped: in its queue, and held by the sink without an outcome yet (NATS: published and not yet acknowledged or confirmed, or held during an outage).",
				[]string{"sink"}, nil),
			fns: make(map[string]func() int),
		},
		queueCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cnbridged_sink_queue_capacity",
			Help: "Records a sink's queue holds at most (queue_size).",
		}, []string{"sink"}),
	}
	reg.MustRegister(m.messages, m.drops, m.queueLen, m.queueCap)
	return m
}

// Counters is one sink's outcome accounting.
type Counters struct {
	Sent    prometheus.Counter
	Failed  prometheus.Counter
	dropped prometheus.Counter
	drops   *prometheus.CounterVec // curried with sink
	// droppedBy mirrors the drops by reason (in DropReasons' order), for
	// a sink that tells its reader what it dropped (the text stream).
	droppedBy [len(dropReasons)]atomic.Uint64
}

// Counters returns the counters of the named sink: the same for every
// caller (the sink and its runner) until Forget.
func (m *Metrics) Counters(sink string) *Counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[sink]; ok {
		return c
	}
	c := &Counters{
		Sent:    m.messages.WithLabelValues(sink, "sent"),
		Failed:  m.messages.WithLabelValues(sink, "failed"),
		dropped: m.messages.WithLabelValues(sink, "dropped"),
		drops:   m.drops.MustCurryWith(prometheus.Labels{"sink": sink}),
	}
	// Every drop reason is exported from the start, at zero, so that
	// rate() and alerts see the series before the first drop.
	for _, r := range DropReasons {
		c.drops.WithLabelValues(r)
	}
	m.counters[sink] = c
	return c
}

// Forget removes a sink's series (after a reload removed the sink).
func (m *Metrics) Forget(sink string) {
	m.mu.Lock()
	delete(m.counters, sink)
	m.mu.Unlock()
	for _, r := range []string{"sent", "failed", "dropped"} {
		m.messages.DeleteLabelValues(sink, r)
	}
	m.drops.DeletePartialMatch(prometheus.Labels{"sink": sink})
	m.queueLen.remove(sink)
	m.queueCap.DeleteLabelValues(sink)
}

// Drop counts n records dropped for reason.
func (c *Counters) Drop(reason string, n int) {
	if n <= 0 {
		return
	}
	c.dropped.Add(float64(n))
	c.drops.WithLabelValues(reason).Add(float64(n))
	for i, r := range dropReasons {
		if r == reason {
			c.droppedBy[i].Add(uint64(n))
		}
	}
}

// DroppedBy returns the records dropped so far, by reason, in the order
// of DropReasons. Safe to call from any goroutine.
func (c *Counters) DroppedBy() (by [len(dropReasons)]uint64) {
	for i := range by {
		by[i] = c.droppedBy[i].Load()
	}
	return by
}

// Drop reasons.
const (
	DropQueueFull  = "queue_full"
	DropShutdown   = "shutdown"
	DropWriteError = "write_error"
	DropOutage     = "outage_buffer_full"
)

// liveGauge is a gauge per sink whose value is read from the sink's runner
// when the registry is scraped, so that it stays true while the runner is
// blocked in a Write.
type liveGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	fns  map[string]func() int
}

// set makes fn the source of sink's value (a reload that replaces a sink
// starts the new runner before it retires the old one).
func (g *liveGauge) set(sink string, fn func() int) {
	g.mu.Lock()
	g.fns[sink] = fn
	g.mu.Unlock()
}

func (g *liveGauge) remove(sink string) {
	g.mu.Lock()
	delete(g.fns, sink)
	g.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (g *liveGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *liveGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for sink, fn := range g.fns {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(fn()), sink)
	}
}

// dropReasons lists every drop reason.
var dropReasons = [...]string{DropQueueFull, DropShutdown, DropWriteError, DropOutage}

// DropReasons lists every drop reason.
var DropReasons = dropReasons[:]
