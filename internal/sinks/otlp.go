package sinks

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/ratelog"
)

// The OTLP sink is in parts:
//
//	otlp.go         the sink: batches, the exporter loop, the accounting
//	otlp_client.go  the gRPC and HTTP exporters and their answers
//	otlp_attrs.go   semantic-convention attributes of a record
//	otlp_body.go    the body: the schema's JSON object as a pdata map
//	otlp_metrics.go export metrics
//	otlp_config.go  the configuration: keys, defaults, validation

// OTLP exports records as OTLP logs, one LogRecord each.
//
// Every record given to Write is counted exactly once: sent when the
// receiver answered the export that carried it with success; failed when
// the receiver refused it (a partial success's rejected records, or the
// whole export with a code that retrying does not change) or Close ran
// out of time; dropped (shutdown) when Write gave up waiting for room.
// An export that fails with a retryable code (UNAVAILABLE, a refused
// connection, HTTP 503…) or times out is sent again, with the same
// records, until it is answered: the receiver may then have the batch
// twice when the first attempt had reached it before the answer was lost
// (at most BatchSize duplicates per such attempt).
type OTLP struct {
	cfg    OTLPConfig
	target string // cfg.Endpoint as exports are sent: gRPC's host:port, HTTP's URL
	enc    *event.Encoder
	body   *bodyEncoder
	c      *Counters
	met    *OTLPMetrics
	log    *zap.Logger
	exp    otlpExporter
	ctx    context.Context
	warned *ratelog.Limiter

	// Used by Write, Flush and Close only (the runner's goroutine).
	cur   *otlpBatch
	bytes int // the bodies' size in cur, to keep a request under receivers' limits
	buf   []byte
	names map[string]string // event names, interned
	keys  map[string]string // body member names, interned

	mu    sync.Mutex
	ready []*otlpBatch // sealed, in export order; ready[0] may be being exported
	live  int          // records held without an outcome
	stall error        // why exports fail, until one succeeds

	room      chan struct{} // records were counted
	kick      chan struct{} // a batch was sealed
	expCtx    context.Context
	expCancel context.CancelFunc
	done      chan struct{}
	wg        sync.WaitGroup

	held    atomic.Int64
	exports [otlpResults]atomic.Uint64
}

// Export outcomes, for OTLPMetrics.
const (
	otlpOK      = iota // answered, every record taken
	otlpPartial        // answered, some records rejected
	otlpRetry          // failed, sent again
	otlpFailed         // failed for good: its records counted failed
	otlpResults
)

var otlpResultNames = [otlpResults]string{"ok", "partial", "retry", "failed"}

type otlpBatch struct {
	logs plog.Logs
	recs plog.LogRecordSlice
}

// NewOTLP returns the sink; it connects when it first exports. It fails
// only for configuration problems: a bad endpoint, an unreadable TLS file.
func NewOTLP(cfg OTLPConfig, enc *event.Encoder, c *Counters, m *OTLPMetrics, log *zap.Logger) (*OTLP, error) {
	cfg.SetDefaults(DaemonKeys{})
	if err := cfg.Validate(DaemonKeys{}); err != nil {
		return nil, fmt.Errorf("otlp sink: %w", err)
	}
	// Knobs that are not keys.
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = defaultOTLPRetryWait
	}
	if cfg.MaxRetryWait < cfg.RetryWait {
		cfg.MaxRetryWait = max(cfg.RetryWait, defaultOTLPMaxRetryWait)
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	target, tlsOn, _ := cfg.target() // Validate checked it
	s := &OTLP{
		cfg:    cfg,
		target: target,
		enc:    enc,
		body:   newBodyEncoder(enc, Body{Schema: cfg.Schema, Product: cfg.Product}),
		c:      c,
		met:    m,
		log:    log,
		ctx:    cfg.Context,
		warned: ratelog.New(time.Minute, 64),
		names:  make(map[string]string),
		keys:   make(map[string]string),
		room:   make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	var err error
	s.exp, err = newOTLPExporter(cfg, target, tlsOn)
	if err != nil {
		return nil, fmt.Errorf("otlp sink: %w", err)
	}
	s.expCtx, s.expCancel = context.WithCancel(context.Background())
	if m != nil {
		m.add(s)
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// newOTLPExporter returns the exporter of cfg's protocol, sending to
// target (cfg.target's), over TLS when tlsOn.
func newOTLPExporter(cfg OTLPConfig, target string, tlsOn bool) (otlpExporter, error) {
	var tc *tls.Config
	if tlsOn {
		var err error
		if tc, err = cfg.TLS.build(); err != nil {
			return nil, err
		}
	}
	gzip := cfg.Compression == "gzip"
	switch cfg.Protocol {
	case OTLPGRPC:
		return newGRPCExporter(target, cfg.Headers, gzip, tc)
	case OTLPHTTP:
		return newHTTPExporter(target, cfg.Headers, gzip, tc), nil
	}
	return nil, fmt.Errorf("protocol %q is not %s", cfg.Protocol, otlpProtocolAccepted)
}

// Pending returns the records the sink holds without an outcome. It
// implements Pender.
func (s *OTLP) Pending() int { return int(s.held.Load()) }

// Ready returns nil unless the last export attempt failed: then why,
// until an export succeeds.
func (s *OTLP) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stall
}

// Write adds r to the batch being filled, sealing it for export when it
// is full. It waits while the sink holds MaxInFlight records.
func (s *OTLP) Write(r *event.Record) error {
	s.mu.Lock()
	for s.live >= s.cfg.MaxInFlight {
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-s.ctx.Done():
			s.c.Drop(DropShutdown, 1)
			return nil
		}
		s.mu.Lock()
	}
	s.live++
	s.held.Store(int64(s.live))
	s.mu.Unlock()

	if s.cur == nil {
		s.cur = s.newBatch()
	}
	s.fill(s.cur.recs.AppendEmpty(), r)
	s.bytes += len(s.buf) + otlpRecordOverhead
	if s.cur.recs.Len() >= s.cfg.BatchSize || s.bytes >= otlpMaxBatchBytes {
		s.seal()
	}
	return nil
}

// A request stays under otlpMaxBatchBytes of bodies (plus a rough
// allowance per record for its attributes and framing): the Collector's
// gRPC receiver refuses requests over 4 MiB by default
// (max_recv_msg_size_mib), and 512 records with long command lines could
// pass it.
const (
	otlpMaxBatchBytes  = 2 << 20
	otlpRecordOverhead = 512
)

// newBatch starts an export: the resource (host.name, service.name,
// service.version) and the scope that every LogRecord shares.
func (s *OTLP) newBatch() *otlpBatch {
	logs := plog.NewLogs()
	rl := logs.ResourceLogs().AppendEmpty()
	ra := rl.Resource().Attributes()
	ra.PutStr(attrHostName, s.cfg.Host)
	ra.PutStr(attrServiceName, otlpServiceName)
	if v := s.cfg.Product.Version; v != "" {
		ra.PutStr(attrServiceVersion, v)
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(otlpScopeName)
	sl.Scope().SetVersion(s.cfg.Product.Version)
	recs := sl.LogRecords()
	recs.EnsureCapacity(s.cfg.BatchSize)
	return &otlpBatch{logs: logs, recs: recs}
}

// fill makes lr the LogRecord of r: its time (the line's receive time, as
// the event's time and the time it was observed), severity, event name,
// attributes, and the body schema's object.
func (s *OTLP) fill(lr plog.LogRecord, r *event.Record) {
	rec := &s.body.rec
	s.enc.Fields(r, rec)
	t := pcommon.Timestamp(r.Time)
	lr.SetTimestamp(t)
	lr.SetObservedTimestamp(t)
	sev, text := otlpSeverity(rec)
	lr.SetSeverityNumber(sev)
	lr.SetSeverityText(text)
	lr.SetEventName(s.eventName(rec))
	otlpAttributes(lr.Attributes(), rec)
	s.buf = s.body.appendFields(s.buf[:0], r, rec)
	if err := setJSONBodyKeys(lr.Body(), s.buf, s.keys); err != nil {
		lr.Body().SetStr(string(s.buf)) // not reached: the encoders write JSON
	}
}

func (s *OTLP) eventName(rec *fields.Record) string {
	key := rec.Event()
	if rec.Type.Set {
		key = "type:" + key
	}
	if n, ok := s.names[key]; ok {
		return n
	}
	n := otlpEventName(rec)
	if len(s.names) < 256 {
		s.names[key] = n
	}
	return n
}

// seal hands the batch being filled to the exporter.
func (s *OTLP) seal() {
	if s.cur == nil || s.cur.recs.Len() == 0 {
		return
	}
	b := s.cur
	s.cur, s.bytes = nil, 0
	s.mu.Lock()
	s.ready = append(s.ready, b)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush seals the batch being filled, so that what the runner handed
// over goes out when its queue runs empty. It does not wait for answers.
func (s *OTLP) Flush(context.Context) error {
	s.seal()
	return nil
}

// run exports the sealed batches in order, each until it has an outcome.
func (s *OTLP) run() {
	defer s.wg.Done()
	wait := s.cfg.RetryWait
	for {
		select {
		case <-s.done:
			return
		default:
		}
		s.mu.Lock()
		var b *otlpBatch
		if len(s.ready) > 0 {
			b = s.ready[0]
		}
		s.mu.Unlock()
		if b == nil {
			select {
			case <-s.kick:
			case <-s.done:
				return
			}
			continue
		}
		n := b.recs.Len()
		ctx, cancel := context.WithTimeout(s.expCtx, s.cfg.Timeout)
		res := s.exp.export(ctx, plogotlp.NewExportRequestFromLogs(b.logs))
		cancel()
		switch {
		case res.err == nil:
			wait = s.cfg.RetryWait
			rejected := int(min(max(res.rejected, 0), int64(n)))
			if rejected > 0 {
				s.exports[otlpPartial].Add(1)
				s.warnEvery("partial", "the OTLP receiver rejected records of an export; counted as failed",
					zap.String("endpoint", s.target), zap.Int("rejected", rejected), zap.Int("of", n), zap.String("message", res.msg))
			} else {
				s.exports[otlpOK].Add(1)
			}
			s.finish(n-rejected, rejected, nil)
		case res.retry && s.expCtx.Err() == nil:
			s.exports[otlpRetry].Add(1)
			d := wait + rand.N(wait/4+1)
			wait = min(2*wait, s.cfg.MaxRetryWait)
			d = max(d, res.throttle)
			s.setStall(fmt.Errorf("otlp export to %s failed, retrying in %s: %w", s.target, d.Round(time.Millisecond), res.err))
			s.warnEvery("retry", "OTLP export failed; retrying the batch", zap.String("endpoint", s.target), zap.Int("records", n), zap.Duration("in", d), zap.Error(res.err))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return // Close counts the batch
			}
		default:
			if s.expCtx.Err() != nil {
				return // Close ran out of time; it counts the batch
			}
			s.exports[otlpFailed].Add(1)
			s.warnEvery("failed", "the OTLP receiver refused an export; its records are counted as failed",
				zap.String("endpoint", s.target), zap.Int("records", n), zap.Error(res.err))
			s.finish(0, n, fmt.Errorf("otlp receiver at %s refuses exports: %w", s.target, res.err))
		}
	}
}

// finish counts the batch at the head of ready (sent and failed records)
// and retires it; stall is nil after a success.
func (s *OTLP) finish(sent, failed int, stall error) {
	s.mu.Lock()
	s.ready[0] = nil
	s.ready = s.ready[1:]
	s.live -= sent + failed
	s.held.Store(int64(s.live))
	s.stall = stall
	s.mu.Unlock()
	if sent > 0 {
		s.c.Sent.Add(float64(sent))
	}
	if failed > 0 {
		s.c.Failed.Add(float64(failed))
	}
	select {
	case s.room <- struct{}{}:
	default:
	}
}

func (s *OTLP) setStall(err error) {
	s.mu.Lock()
	s.stall = err
	s.mu.Unlock()
}

func (s *OTLP) warnEvery(key, msg string, f ...zap.Field) {
	if s.warned.Allow(key, time.Now()) {
		s.log.Warn(msg, f...)
	}
}

// Close seals the batch being filled and waits until every record has an
// outcome, or ctx ends, or DrainTimeout passes; what is left is counted as
// failed. Then it stops the exporter and closes the connection.
func (s *OTLP) Close(ctx context.Context) error {
	s.seal()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	for {
		s.mu.Lock()
		n := s.live
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.room:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(s.done)
	s.expCancel()
	s.wg.Wait()
	s.mu.Lock()
	left := s.live
	s.live, s.ready = 0, nil
	s.held.Store(0)
	s.mu.Unlock()
	if left > 0 {
		s.c.Failed.Add(float64(left))
		s.log.Warn("closing the OTLP sink with records not answered; counted as failed", zap.Int("failed", left))
	}
	if s.met != nil {
		s.met.remove(s)
	}
	return s.exp.close()
}
