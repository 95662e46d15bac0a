// Package otlptest runs the OpenTelemetry Collector's own OTLP receiver
// (go.opentelemetry.io/collector/receiver/otlpreceiver) in-process on
// loopback, for tests and the load harness: over gRPC or HTTP, handing
// what arrives to a consumer, and stopped and started again on its port
// to simulate an outage (as natstest does with nats-server).
package otlptest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// Protocols.
const (
	GRPC = "grpc"
	HTTP = "http"
)

// Receiver is a running OTLP receiver.
type Receiver struct {
	Protocol string
	Addr     string // host:port it listens on

	consume func(context.Context, plog.Logs) error
	cfg     *otlpreceiver.Config // nil: config()
	mu      sync.Mutex
	rcv     receiver.Logs
}

// Start starts an OTLP logs receiver for protocol on addr ("" or a port 0
// address: a free loopback port), handing every export to consume. What
// consume returns is the receiver's answer: nil takes the records, an
// error refuses them (consumererror.NewPermanent: for good, else retryable).
func Start(protocol, addr string, consume func(context.Context, plog.Logs) error) (*Receiver, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		addr = l.Addr().String()
		l.Close()
	}
	r := &Receiver{Protocol: protocol, Addr: addr, consume: consume}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Endpoint is what an OTLP exporter is pointed at: host:port for gRPC,
// http://host:port for HTTP.
func (r *Receiver) Endpoint() string {
	if r.Protocol == HTTP {
		return "http://" + r.Addr
	}
	return r.Addr
}

// config is the receiver's config for r.Protocol on r.Addr: the
// receiver's defaults with that one protocol enabled.
func (r *Receiver) config() (*otlpreceiver.Config, error) {
	cfg := otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config)
	switch r.Protocol {
	case GRPC:
		g := configgrpc.NewDefaultServerConfig()
		g.NetAddr.Endpoint = r.Addr
		cfg.Protocols.GRPC = configoptional.Some(g)
		cfg.Protocols.HTTP = configoptional.None[otlpreceiver.HTTPConfig]()
	case HTTP:
		// The receiver's own default HTTP section, as a config that names
		// protocols.http gets it.
		hc := *cfg.Protocols.HTTP.GetOrInsertDefault()
		hc.ServerConfig.NetAddr.Endpoint = r.Addr
		cfg.Protocols.HTTP = configoptional.Some(hc)
		cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	default:
		return nil, fmt.Errorf("otlptest: protocol %q is not grpc or http", r.Protocol)
	}
	return cfg, nil
}

// StartConfig starts a receiver with cfg as a Collector would run it (a
// config file's receivers.otlp section), handing every export to consume.
func StartConfig(cfg *otlpreceiver.Config, consume func(context.Context, plog.Logs) error) (*Receiver, error) {
	r := &Receiver{consume: consume, cfg: cfg}
	if g := cfg.Protocols.GRPC.Get(); g != nil {
		r.Protocol, r.Addr = GRPC, g.NetAddr.Endpoint
	} else if h := cfg.Protocols.HTTP.Get(); h != nil {
		r.Protocol, r.Addr = HTTP, h.ServerConfig.NetAddr.Endpoint
	}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Receiver) start() error {
	f := otlpreceiver.NewFactory()
	cfg := r.cfg
	if cfg == nil {
		var err error
		if cfg, err = r.config(); err != nil {
			return err
		}
	}
	next, err := consumer.NewLogs(r.consume)
	if err != nil {
		return err
	}
	set := receiver.Settings{
		ID: component.NewIDWithName(f.Type(), r.Protocol),
		TelemetrySettings: component.TelemetrySettings{
			Logger:         zap.NewNop(),
			TracerProvider: tracenoop.NewTracerProvider(),
			MeterProvider:  metricnoop.NewMeterProvider(),
			Resource:       pcommon.NewResource(),
		},
		BuildInfo: component.NewDefaultBuildInfo(),
	}
	rcv, err := f.CreateLogs(context.Background(), set, cfg, next)
	if err != nil {
		return fmt.Errorf("otlptest: %w", err)
	}
	// The port was free a moment ago, or was ours before a Stop: retry
	// while the kernel still holds it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = rcv.Start(context.Background(), nopHost{})
		if err == nil {
			break
		}
		_ = rcv.Shutdown(context.Background())
		if time.Now().After(deadline) {
			return fmt.Errorf("otlptest: starting the receiver on %s: %w", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
		if rcv, err = f.CreateLogs(context.Background(), set, cfg, next); err != nil {
			return fmt.Errorf("otlptest: %w", err)
		}
	}
	r.mu.Lock()
	r.rcv = rcv
	r.mu.Unlock()
	return nil
}

// Stop shuts the receiver down: its port refuses connections until
// Restart.
func (r *Receiver) Stop() error {
	r.mu.Lock()
	rcv := r.rcv
	r.rcv = nil
	r.mu.Unlock()
	if rcv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rcv.Shutdown(ctx)
}

// Restart starts the receiver again on its port.
func (r *Receiver) Restart() error { return r.start() }

type nopHost struct{}

func (nopHost) GetExtensions() map[component.ID]component.Component { return nil }

// Recorder is a consumer that keeps every LogRecord it is given.
type Recorder struct {
	mu   sync.Mutex
	logs []plog.Logs
	n    int
	// Refuse, when set, answers each export instead of taking it.
	Refuse func(plog.Logs) error
}

// Consume is the consumer to give Start.
func (rec *Recorder) Consume(_ context.Context, ld plog.Logs) error {
	if rec.Refuse != nil {
		if err := rec.Refuse(ld); err != nil {
			return err
		}
	}
	own := plog.NewLogs()
	ld.CopyTo(own)
	rec.mu.Lock()
	rec.logs = append(rec.logs, own)
	rec.n += ld.LogRecordCount()
	rec.mu.Unlock()
	return nil
}

// Count returns the LogRecords taken so far.
func (rec *Recorder) Count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.n
}

// Each calls f for every LogRecord taken, in the order they came, with
// its resource.
func (rec *Recorder) Each(f func(res pcommon.Resource, lr plog.LogRecord)) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ld := range rec.logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					f(rl.Resource(), lrs.At(k))
				}
			}
		}
	}
}
