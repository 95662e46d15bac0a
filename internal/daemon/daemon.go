// Package daemon assembles cnbridged from its configuration: sinks, then
// the bridge and router, then the listener; it serves metrics and health,
// applies reloads and stops the stages in reverse order, draining each.
package daemon

import (
	"runtime/debug"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/query"
	"github.com/cnbridged/cnbridged/internal/requests"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/schema"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// Options are what the daemon needs besides its config.
type Options struct {
	Log *zap.Logger
	// Notify receives systemd state changes ("READY=1", …); nil for none.
	Notify func(state string)
	// Build names the running build in cnbridged_build_info.
	Build BuildInfo
	// Stdout is where stdout sinks write (os.Stdout when nil).
	Stdout *os.File
	// StdoutColor colours stdout sinks of format text: set it only when
	// Stdout is a terminal and NO_COLOR is not set.
	StdoutColor bool
	// StdoutWidth, when positive, is the terminal's width: text rows are
	// cut to it.
	StdoutWidth int
	// Load reads and validates the config again for a reload: the same
	// code path as "cnbridged validate". Nil disables reloads.
	Load func() (*config.Config, error)
	// WatchdogInterval is systemd's WatchdogSec (0: no watchdog).
	WatchdogInterval time.Duration
}

// Daemon is a running cnbridged.
type Daemon struct {
	opts Options
	log  *zap.Logger
	reg  *prometheus.Registry

	mu      sync.Mutex // cfg, sinks, slots
	cfg     *config.Config
	sinks   map[string]*sinkEntry
	slots   [router.MaxSinks]*sinks.Runner
	sinkMet *sinks.Metrics
	natsMet *sinks.NATSMetrics // every NATS sink's connection metrics
	otlpMet *sinks.OTLPMetrics // every OTLP sink's export metrics
	enc     *event.Encoder
	product schema.Product // this build, named in schema documents (OCSF metadata.product, OTLP service.version)

	lis    *listener.Listener
	bridge *bridge.Bridge

	sinkCtx     context.Context // cancelled when draining runs out of time
	cancelSinks context.CancelFunc
	sinkErr     chan error
	wg          sync.WaitGroup // sink runners
	reload      *reloadMetrics
	replies     *requests.Server // nil without requests
	summary     *stopSummary     // filled by the stop sequence
	stop        stopping         // the stop sequence's deadlines
	readErr     chan error       // the reader's end
	trace       *restartTrace    // nil without state_dir
	stopErr     error            // a fatal error seen by the stop sequence
	tap         *sinks.Runner    // the tap socket's runner (tap.go), nil without it
	// responder answers questions about the process table (query.go),
	// nil while none can be answered.
	responder atomic.Pointer[query.Responder]
	// handling is when the reader entered its handler (Unix ns), 0 when
	// it is waiting on the socket: the watchdog pings only while the
	// reader is not stuck.
	handling atomic.Int64
}

type sinkEntry struct {
	cfg    config.Sink
	runner *sinks.Runner
	done   chan struct{}
}

// New checks nothing beyond what config validation did; Run does the work.
func New(cfg *config.Config, opts Options) *Daemon {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg, opts.Build)
	return &Daemon{
		opts:    opts,
		log:     opts.Log,
		reg:     reg,
		cfg:     cfg,
		sinks:   make(map[string]*sinkEntry),
		sinkErr: make(chan error, router.MaxSinks),
		product: schema.Product{Version: opts.Build.resolve(debug.ReadBuildInfo).Version},
	}
}

// Registry returns the daemon's metrics registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Run starts every stage, blocks until ctx ends or a stage fails, then
// stops them in reverse order. Each value on reloads asks for the config to
// be loaded again (Options.Load) and applied.
//
// A stop asked for by ending ctx unsubscribes, reads the socket until it
// is empty and drains the sinks, all within shutdown_timeout; what cannot
// be delivered in time is counted. It returns nil whatever was dropped:
// only a fatal error (the socket failing, a sink with on_error: exit) is
// returned, logged once as it happens (one line at error level with its
// cause). Its last log line is one summary of the whole run.
func (d *Daemon) Run(ctx context.Context, reloads <-chan struct{}) error {
	err := d.run(ctx, reloads)
	sum := d.summary
	if sum == nil {
		sum = &stopSummary{}
	}
	if gerr := gatherSummary(d.reg, sum); gerr != nil {
		d.log.Warn("gathering the stop summary", zap.Error(gerr))
	}
	fields := sum.Fields()
	if err != nil {
		// run logged the error as it happened, with its cause: not again.
		d.log.Error("cnbridged stopped", append(fields, zap.Bool("fatal", true))...)
	} else {
		d.log.Info("cnbridged stopped", fields...)
	}
	return err
}

func displaySource(s string) string {
	if s == "" {
		return "(built-in default)"
	}
	return s
}

// handle is the reader's handler: the bridge, plus the watchdog ping.
func (d *Daemon) handle(dgs []cnmsg.Datagram, now time.Time) {
	d.handling.Store(now.UnixNano())
	d.bridge.Handle(dgs, now)
	d.handling.Store(0)
}

// watchdog pings systemd every interval/3 while the reader is healthy:
// waiting on the socket, or in its handler for less than interval/2.
func (d *Daemon) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h := d.handling.Load()
			if h == 0 || now.Sub(time.Unix(0, h)) < interval/2 {
				d.opts.Notify("WATCHDOG=1")
			} else {
				d.log.Error("reader stuck in its handler; not pinging the watchdog", zap.Duration("for", now.Sub(time.Unix(0, h))))
			}
		}
	}
}

func (d *Daemon) registerListenerMetrics() {
	lis := d.lis
	d.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cnbridged_socket_overruns_total",
			Help: "ENOBUFS from the connector socket: it overflowed at least once since the previous read (one per episode).",
		}, func() float64 { return float64(lis.Stats().Overruns) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cnbridged_socket_drops_total",
			Help: "Messages the kernel dropped for the connector socket (SO_MEMINFO SK_MEMINFO_DROPS): exact.",
		}, func() float64 {
			n, err := lis.Drops()
			if err != nil {
				return 0
			}
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cnbridged_socket_datagrams_total",
			Help: "Datagrams read from the connector socket.",
		}, func() float64 { return float64(lis.Stats().Received) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cnbridged_subscribed",
			Help: "1 when the connector socket is subscribed (process connector acknowledged, when group 1 is joined).",
		}, func() float64 {
			if lis.Subscribed() {
				return 1
			}
			return 0
		}),
	)
}

// serveMetrics serves /metrics, /healthz, /readyz and /debug/proctable (a
// read-only copy of the process table: pids and start ticks).
// It returns the address it is bound to.
func (d *Daemon) serveMetrics(addr string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/proctable", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		v, err := d.bridge.TableView(ctx)
		if err != nil {
			http.Error(w, "process table: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	d.log.Info("serving metrics", zap.String("listen", ln.Addr().String()))
	return srv, ln.Addr().String(), nil
}

// Ready returns nil when the socket is subscribed and every sink is ready.
func (d *Daemon) Ready() error {
	if d.lis == nil || !d.lis.Subscribed() {
		return errors.New("connector socket not subscribed")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for name, s := range d.sinks {
		if err := s.runner.Ready(); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func monotonicUsec() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return strconv.FormatInt(ts.Nano()/1000, 10)
}

// tableEvents are the process events the process table is fed.
const tableEvents = cnmsg.ProcFork | cnmsg.ProcExec | cnmsg.ProcExit | cnmsg.ProcUID | cnmsg.ProcGID |
	cnmsg.ProcSID | cnmsg.ProcComm

// readerPriority is the reader thread's realtime priority for cfg:
// listener.reader_priority while a route enriches (the reader then reads
// /proc for each exec against the clock: a short-lived program must still
// run), else none (the priority would only cost CPU: every event its own
// wake-up).
func readerPriority(cfg *config.Config) int {
	if !enriches(cfg) {
		return 0
	}
	return cfg.Listener.ReaderPriority
}

func enriches(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Enrich {
			return true
		}
	}
	return false
}

// compileRedact compiles enrich_redact (validated by config.Validate).
func compileRedact(pats []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(pats))
	for _, p := range pats {
		if re, err := regexp.Compile(p); err == nil {
			out = append(out, re)
		}
	}
	return out
}
