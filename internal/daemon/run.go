package daemon

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/bridge"
	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/enrich"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// stage is one step of bringing the daemon up, in order: sinks before the
// path that feeds them, the reader last. start returns what undoes it (nil
// for nothing). run calls the stops of the stages that started in reverse
// order, once, whether the daemon ran and was asked to stop or a later
// stage failed to start.
type stage struct {
	name  string
	start func(ctx context.Context, cfg *config.Config) (stop func(), err error)
}

// stopping are the deadlines of the stop sequence, set when it begins:
// sinks drain until soft (90% of shutdown_timeout), when their queues are
// closed and counted; a sink still stuck in a write at hard is abandoned.
type stopping struct {
	soft, hard time.Time
}

func (d *Daemon) stages() []stage {
	return []stage{
		{"sinks", d.startSinks},
		{"tap", func(_ context.Context, cfg *config.Config) (func(), error) { return d.startTap(cfg), nil }},
		{"requests", d.startRequests},
		{"bridge", d.startBridge},
		{"query", d.startQuery},
		{"listener", d.startListener},
		{"restart trace", d.startTrace},
		{"reader", d.startReader},
		{"subscription", func(ctx context.Context, _ *config.Config) (func(), error) { return nil, d.lis.Subscribe(ctx) }},
		{"metrics", d.startMetrics},
		{"watchdog", d.startWatchdog},
	}
}

func (d *Daemon) run(ctx context.Context, reloads <-chan struct{}) error {
	cfg := d.cfg
	d.sinkMet = sinks.NewMetrics(d.reg)
	d.natsMet = sinks.NewNATSMetrics(d.reg)
	d.otlpMet = sinks.NewOTLPMetrics(d.reg)
	d.enc = event.NewEncoder(cfg.Host)
	d.reload = newReloadMetrics(d.reg)
	d.sinkCtx, d.cancelSinks = context.WithCancel(context.Background())
	defer d.cancelSinks()

	var stops []func()
	var err error
	for _, s := range d.stages() {
		var stop func()
		if stop, err = s.start(ctx, cfg); err != nil {
			// The cause first, on its own line, before the stop
			// sequence; the stop summary that ends the log says fatal.
			d.log.Error("cannot start", zap.String("stage", s.name), zap.Error(err))
			break
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}
	running := err == nil
	if running {
		d.log.Info("cnbridged running",
			zap.Ints("groups", cfg.Listener.Groups),
			zap.Strings("sinks", cfg.SinkNames()),
			zap.String("config", displaySource(cfg.Source)),
			zap.String("metrics", cfg.Metrics.Listen))
		d.opts.Notify("READY=1")
		if err = d.serve(ctx, reloads); err != nil {
			d.log.Error("stopping on a fatal error", zap.Error(err))
		}
	}

	// The one cleanup path.
	d.opts.Notify("STOPPING=1")
	d.mu.Lock()
	timeout := d.cfg.ShutdownTimeout
	d.mu.Unlock()
	if timeout <= 0 {
		timeout = config.DefaultShutdownTimeout
	}
	if running {
		d.log.Info("stopping: reading the socket empty and draining the sinks", zap.Duration("shutdown_timeout", timeout))
	} else {
		d.log.Info("stopping the stages that started", zap.Duration("shutdown_timeout", timeout))
	}
	now := time.Now()
	d.stop = stopping{soft: now.Add(timeout * 9 / 10), hard: now.Add(timeout)}
	// A stalled when_full: block sink can hold the reader only until soft:
	// closing the queues frees it.
	cutoff := time.AfterFunc(timeout*9/10, d.cancelSinks)
	defer cutoff.Stop()
	d.summary = &stopSummary{}
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	if err == nil && d.stopErr != nil {
		err = d.stopErr
		d.log.Error("reading the connector socket failed", zap.Error(err))
	}
	return err
}

// serve applies reloads until ctx ends (a requested stop: nil) or a stage
// fails (the reader, a sink that cannot go on).
func (d *Daemon) serve(ctx context.Context, reloads <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.readErr:
			d.readErr <- err // for the reader's stop
			return err
		case err := <-d.sinkErr:
			return err
		case <-reloads:
			d.opts.Notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
			d.Reload(ctx)
			d.opts.Notify("READY=1")
		}
	}
}

// startSinks starts every configured sink. Its stop drains them until the
// soft deadline.
func (d *Daemon) startSinks(_ context.Context, cfg *config.Config) (func(), error) {
	if _, err := d.applySinks(cfg); err != nil {
		return nil, err
	}
	return func() {
		d.summary.SinksTimedOut = !d.stopSinks(d.stop.soft, d.stop.hard)
	}, nil
}

// startBridge builds the plan, the enrichment stage and the bridge, and
// runs the enricher. Its stop ends the enricher: what it still holds goes
// out unenriched, counted.
func (d *Daemon) startBridge(_ context.Context, cfg *config.Config) (func(), error) {
	plan, err := d.buildPlan(cfg, nil)
	if err != nil {
		return nil, err
	}
	d.enricher = enrich.New(enrich.Options{
		MaxCmdline:    cfg.EnrichMaxCmdlineBytes,
		MaxEntries:    cfg.ProcessTable.MaxEntries,
		ExecReaders:   cfg.ProcessTable.ExecReaders,
		CaptureBudget: cfg.ProcessTable.CaptureBudget,
		QueueSize:     cfg.EnrichQueueSize,
		Redact:        compileRedact(cfg.EnrichRedact),
	}, d.reg, d.log)
	d.bridge = bridge.New(plan, seqtrack.Options{
		ReorderWindow: cfg.Ledger.ReorderWindow,
		MaxStreams:    cfg.Ledger.MaxStreams,
	}, d.enricher, d.reg, d.log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.enricher.Run(ctx); err != nil {
			d.log.Error("enrichment stage stopped", zap.Error(err))
		}
	}()
	return func() { cancel(); <-done }, nil
}

// startListener dials the connector socket and joins the groups. Its stop
// closes the socket.
func (d *Daemon) startListener(_ context.Context, cfg *config.Config) (func(), error) {
	mask, _, userFilter := procMask(cfg)
	if userFilter != nil && mask == cnmsg.ProcAll {
		d.log.Warn("this kernel cannot filter process events per socket (needs Linux 6.6); filtering listener.proc_events in userspace")
	}
	lis, err := listener.New(listener.Config{
		Groups:             listenGroups(cfg),
		ReceiveBufferBytes: cfg.Listener.ReceiveBufferBytes,
		BatchSize:          cfg.Listener.BatchSize,
		HandshakeTimeout:   cfg.Listener.HandshakeTimeout,
		ProcMask:           mask,
	}, d.log)
	if err != nil {
		return nil, err
	}
	d.lis = lis
	d.registerListenerMetrics()
	d.registerReceiveBuffer()
	d.warnReceiveBuffer(cfg.Listener.ReceiveBufferBytes)
	d.bridge.SetOverruns(func() uint64 { return d.lis.Stats().Overruns })
	d.enricher.SetWake(lis.Wake)
	d.enricher.SetEmptyAt(lis.EmptyAt)
	lis.SetPriority(readerPriority(cfg))
	return func() {
		if err := d.lis.Close(); err != nil {
			d.log.Warn("closing the connector socket", zap.Error(err))
		}
	}, nil
}

// startTrace reads the restart trace (seeding the sequence tracker, sending the gap
// record) before the first batch is read. Its stop, after the reader's,
// writes the clean stop's state.
func (d *Daemon) startTrace(_ context.Context, cfg *config.Config) (func(), error) {
	if cfg.StateDir == "" {
		return nil, nil
	}
	d.trace = openRestartTrace(cfg.StateDir, d.bridge, d.log, time.Now())
	if d.trace == nil {
		return nil, nil
	}
	return func() {
		d.bridge.RecordSeqs(nil) // the reader is done; the mapping goes
		d.trace.close(true, time.Now())
	}, nil
}

// startReader runs the kernel reader. Its stop ends it, then sends IGNORE,
// leaves the groups and reads what the socket still holds, through the
// bridge to the sinks, until it is empty or the soft deadline.
func (d *Daemon) startReader(ctx context.Context, _ *config.Config) (func(), error) {
	readCtx, stopRead := context.WithCancel(context.WithoutCancel(ctx))
	d.readErr = make(chan error, 1)
	go func() { d.readErr <- d.lis.Run(readCtx, d.handle) }()
	return func() {
		stopRead()
		d.stopErr = <-d.readErr // already what run returns if it ended the run
		n, empty, err := d.lis.Drain(d.handle, d.stop.soft)
		if err != nil {
			d.log.Warn("reading the connector socket at stop", zap.Error(err))
		}
		d.handle(nil, time.Now()) // exit_lost records found since the last batch
		d.bridge.Close()
		d.summary.Drained, d.summary.SocketLeft = n, !empty
		if drops, err := d.lis.Drops(); err == nil {
			d.summary.SocketDrops = drops
		}
	}, nil
}

// startMetrics serves /metrics, /healthz and /readyz.
func (d *Daemon) startMetrics(_ context.Context, cfg *config.Config) (func(), error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	srv, addr, err := d.serveMetrics(cfg.Metrics.Listen)
	if err != nil {
		return nil, err
	}
	d.trace.setMetrics(addr) // where health and stats find this daemon
	return func() { shutdownHTTP(srv) }, nil
}

func shutdownHTTP(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// startWatchdog pings systemd's watchdog while the reader is healthy.
func (d *Daemon) startWatchdog(ctx context.Context, _ *config.Config) (func(), error) {
	if d.opts.WatchdogInterval <= 0 {
		return nil, nil
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.watchdog(wctx, d.opts.WatchdogInterval); close(done) }()
	return func() { stop(); <-done }, nil
}
