package top

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// Fleet counts the events every host publishes to NATS (JSON format),
// from a core subscription: events by host and type, and the messages the
// hosts' loss markers report lost. Sink drops and queues are each daemon's
// own and are not on NATS: Fleet leaves them empty.
type Fleet struct {
	mu      sync.Mutex
	s       Sample
	nc      *nats.Conn
	subject string
	url     string
}

// NewFleet subscribes to subject (e.g. "cn.>") at url.
func NewFleet(url, subject string, opts ...nats.Option) (*Fleet, error) {
	f := &Fleet{url: url, subject: subject, s: Sample{Events: map[Key]float64{}, Lost: map[string]float64{}}}
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("cnbridged top"), nats.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("--nats %s: %w", url, err)
	}
	f.nc = nc
	_, err = nc.Subscribe(subject, func(m *nats.Msg) { f.Add(m.Data) })
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("--subject %s: %w", subject, err)
	}
	return f, nil
}

// Add counts one event line; a line that is not one is ignored.
func (f *Fleet) Add(b []byte) {
	l, err := fields.Parse(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		return
	}
	switch l.Type.V {
	case fields.TypeLoss:
		f.s.Lost[l.Host] += float64(l.Lost.V)
	case "":
		f.s.Events[Key{l.Host, l.Event()}]++
		if _, ok := f.s.Lost[l.Host]; !ok {
			f.s.Lost[l.Host] = 0
		}
	}
}

// Name is the URL and subject.
func (f *Fleet) Name() string { return f.url + " " + f.subject }

// Sample returns the counts so far.
func (f *Fleet) Sample() (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.s.clone()
	s.Time = time.Now()
	return s, nil
}

// Close unsubscribes.
func (f *Fleet) Close() {
	if f.nc != nil {
		f.nc.Close()
	}
}
