// Package top is the live full-screen view of event rates, loss, sink
// drops and queue fill ("cnbridged top"). What it draws is a pure function
// of two samples of cumulative counters (Compute, then Render); the
// bubbletea model only takes the samples and redraws.
package top

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Key is one host's count of one event type ("fork", …, "msg" for other
// connector messages).
type Key struct{ Host, Event string }

// Sink is one sink's cumulative counters and its queue.
type Sink struct {
	Sent, Dropped, Failed float64
	QueueLen, QueueCap    float64
}

// Sample is one reading of cumulative counters.
type Sample struct {
	Time   time.Time
	Events map[Key]float64
	// Lost is messages lost per host (sequence gaps the ledger counted, or
	// the loss markers' counts).
	Lost map[string]float64
	// Sinks and KernelDrops are known for a local daemon only.
	Sinks       map[string]Sink
	KernelDrops float64
	Local       bool
}

// Sampler takes samples.
type Sampler interface {
	Sample() (Sample, error)
	// Name says where the samples come from, for the title.
	Name() string
}

// Metrics samples a local daemon's metrics endpoint. Its counters carry no
// host label: they are all Host's.
type Metrics struct {
	URL    string
	Host   string
	Client *http.Client
}

// Name is the endpoint's URL.
func (m *Metrics) Name() string { return m.URL }

// Sample scrapes the endpoint once.
func (m *Metrics) Sample() (Sample, error) {
	c := m.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Get(m.URL)
	if err != nil {
		return Sample{}, fmt.Errorf("scraping %s: %w", m.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("scraping %s: %s", m.URL, resp.Status)
	}
	return ParseMetrics(resp.Body, m.Host, time.Now())
}

// ParseMetrics reads the Prometheus text exposition of one daemon (host)
// taken at t.
func ParseMetrics(r io.Reader, host string, t time.Time) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("metrics: %w", err)
	}
	s := Sample{Time: t, Events: map[Key]float64{}, Lost: map[string]float64{}, Sinks: map[string]Sink{}, Local: true}
	each(fams, "cnbridged_proc_events_received_total", func(l map[string]string, v float64) {
		s.Events[Key{host, l["event"]}] += v
	})
	each(fams, "cnbridged_messages_received_total", func(l map[string]string, v float64) {
		if l["idx"] != "1" || l["val"] != "1" {
			s.Events[Key{host, "msg"}] += v
		}
	})
	// Loss while listening: the restart gap (when="not_listening") is
	// counted once at start and is no rate to watch.
	each(fams, "cnbridged_messages_lost_total", func(l map[string]string, v float64) {
		if l["when"] != "not_listening" {
			s.Lost[host] += v
		}
	})
	if _, ok := s.Lost[host]; !ok {
		s.Lost[host] = 0
	}
	each(fams, "cnbridged_socket_drops_total", func(_ map[string]string, v float64) { s.KernelDrops += v })
	sink := func(name string) Sink { return s.Sinks[name] }
	each(fams, "cnbridged_sink_messages_total", func(l map[string]string, v float64) {
		k := sink(l["sink"])
		switch l["result"] {
		case "sent":
			k.Sent = v
		case "dropped":
			k.Dropped = v
		case "failed":
			k.Failed = v
		}
		s.Sinks[l["sink"]] = k
	})
	each(fams, "cnbridged_sink_queue_length", func(l map[string]string, v float64) {
		k := sink(l["sink"])
		k.QueueLen = v
		s.Sinks[l["sink"]] = k
	})
	each(fams, "cnbridged_sink_queue_capacity", func(l map[string]string, v float64) {
		k := sink(l["sink"])
		k.QueueCap = v
		s.Sinks[l["sink"]] = k
	})
	return s, nil
}

func each(fams map[string]*dto.MetricFamily, name string, fn func(labels map[string]string, v float64)) {
	f, ok := fams[name]
	if !ok {
		return
	}
	for _, m := range f.GetMetric() {
		l := make(map[string]string, len(m.GetLabel()))
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		fn(l, v)
	}
}

// clone copies s's maps.
func (s Sample) clone() Sample {
	c := s
	c.Events = maps.Clone(s.Events)
	c.Lost = maps.Clone(s.Lost)
	c.Sinks = maps.Clone(s.Sinks)
	return c
}

func sortedKeys[K interface{ ~string }, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
