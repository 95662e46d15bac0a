package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/ratelog"
)

// The NATS sink is in parts:
//
//	nats.go           the sink: Write, Flush, Close, Ready
//	nats_pump.go      the pump: publishes held messages, resends, retries
//	nats_ledger.go    the in-flight ledger (pure: every message until counted)
//	nats_core.go      core NATS: confirmation by PING round trips
//	nats_jetstream.go JetStream: acknowledgements, the stream
//	nats_conn.go      connection options, authentication, TLS, state handlers
//	nats_msg.go       encoding: subject, headers, Nats-Msg-Id
//	nats_subject.go   the subject template
//	nats_metrics.go   connection metrics
//	nats_config.go    the typed configuration section

// NATSConfig configures a NATS sink.
type NATSConfig struct {
	Name    string // the sink's name: metrics label and connection name
	URL     string // one or several servers, comma-separated
	Subject string // template over {host} {idx} {val} {event} {cpu} {container}
	Format  string // "json" (the JSON line) or "raw" (the cn_msg payload)
	Host    string // {host}, Cn-Host and the Nats-Msg-Id
	// Body is what a format json message holds: the native line or a
	// schema's document.
	Body Body

	// JetStream publishes with acknowledgements: at most MaxInFlight
	// unacknowledged, each retried with the same Nats-Msg-Id until it is
	// acknowledged. Without it the sink publishes to core NATS and confirms
	// delivery to the server with PING round trips while messages are
	// unconfirmed, waiting for them only when MaxInFlight are.
	JetStream   bool
	MaxInFlight int
	AckTimeout  time.Duration // per attempt; also bounds a confirmation round trip
	// ReconnectBufferBytes bounds, in message bytes, what the sink holds
	// while it cannot publish. Core NATS: what does not fit is dropped
	// (reason outage_buffer_full). JetStream: Write waits for room, and the
	// runner's queue holds the rest.
	ReconnectBufferBytes int
	DrainTimeout         time.Duration // Close waits at most this long for acks
	// ReconnectWait is the first pause between reconnect rounds; it doubles
	// up to MaxReconnectWait, with up to 25 % jitter.
	ReconnectWait    time.Duration
	MaxReconnectWait time.Duration

	User, Password string
	Token          string
	NkeySeedFile   string
	CredsFile      string
	TLS            NATSTLS
	Stream         *NATSStream // created or updated on connect when set

	// BootID starts every Nats-Msg-Id (then Host and Name); "" reads
	// /proc/sys/kernel/random/boot_id.
	BootID string
	// Context ends the sink's waits: a Write blocked on a full in-flight
	// window counts its record as dropped (reason shutdown) once it ends.
	// The daemon passes its sinks' context, cancelled when draining runs
	// out of time. Nil means never.
	Context context.Context
	// Options are appended to the connection options (tests use a custom
	// dialer).
	Options []nats.Option

	// compiled is Subject compiled for Host by NATSSinkConfig.Resolve.
	compiled *subjectTemplate
}

// NATSStream is the stream a JetStream sink creates or updates.
type NATSStream struct {
	Name            string
	Subjects        []string
	Storage         string // file, memory
	DuplicateWindow time.Duration
	Replicas        int
}

// bootIDPath is where the kernel publishes the boot id.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// confirmer turns publishes into outcomes. NewNATS chooses one for the
// sink's life: the core confirmer (PING round trips, nats_core.go) or the
// JetStream acker (acknowledgements, nats_jetstream.go). Methods ending in Locked
// run under the sink's mu.
type confirmer interface {
	// start starts the confirmer's goroutines (counted in the sink's wg).
	start()
	// holdsWhileDown reports whether Write, while disconnected, holds up to
	// the outage buffer and drops the rest instead of waiting for room.
	holdsWhileDown() bool
	// ackDeadline returns when a message published at now is overdue
	// (zero: never by time). It is called for every successful publish,
	// before the ledger records it, and may note that the window starts
	// waiting.
	ackDeadline(now time.Time) time.Time
	// publishedLocked is told that messages were published.
	publishedLocked()
	// confirm confirms what is outstanding, waiting at most timeout
	// (Flush, Close); it may do nothing when outcomes arrive on their own.
	confirm(timeout time.Duration)
	// readyLocked returns why the sink cannot make progress, or nil.
	readyLocked() error
}

// NATS publishes records to core NATS or JetStream.
//
// Every record given to Write is counted exactly once: sent when JetStream
// acknowledged it (or, core NATS, when a PING round trip after it came back
// on the same connection), dropped when it could not be held during an
// outage, failed when JetStream rejected it or Close ran out of time.
// Messages whose delivery a broken connection left unknown are sent again
// with the same Nats-Msg-Id: JetStream drops the duplicates; core NATS
// subscribers may see them and can drop them by that header.
type NATS struct {
	cfg      NATSConfig
	enc      *event.Encoder
	body     *bodyEncoder
	c        *Counters
	met      *NATSMetrics
	log      *zap.Logger
	ctx      context.Context
	nc       *nats.Conn
	conf     confirmer
	subj     *subjectTemplate
	raw      bool
	idPrefix string // of every Nats-Msg-Id: boot, host, sink
	inbox    string // JetStream reply prefix, ending in "."
	urls     string // redacted, for logs and errors

	// Used by Write only (under mu).
	scratch  []byte
	subjects subjCache
	nums     strCache
	userIDs  userIDs

	mu       sync.Mutex
	l        *ledger[natsMsg]
	streamOK bool
	stall    error // why publishing does not progress (JetStream)
	closing  bool
	warned   *ratelog.Limiter // warnEvery

	room chan struct{} // a message finished, or the connection went down
	kick chan struct{} // the pump should look now

	done chan struct{}
	wg   sync.WaitGroup

	held       atomic.Int64
	reconnects atomic.Uint64

	stateMu sync.Mutex
	connErr error
	logged  string // last connect error logged in this outage
}

// NewNATS connects (in the background: the sink starts and stays up while
// the servers are down) and returns the sink. It fails only for
// configuration problems: an unreadable or group/other-readable secret
// file, a bad template, an invalid TLS file.
func NewNATS(cfg NATSConfig, enc *event.Encoder, c *Counters, m *NATSMetrics, log *zap.Logger) (*NATS, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.ReconnectBufferBytes <= 0 {
		cfg.ReconnectBufferBytes = DefaultReconnectBufferSize
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultNATSDrainTimeout
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = 250 * time.Millisecond
	}
	if cfg.MaxReconnectWait < cfg.ReconnectWait {
		cfg.MaxReconnectWait = max(cfg.ReconnectWait, 2*time.Second)
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Format == "" {
		cfg.Format = "json"
	}
	if cfg.Format != "json" && cfg.Format != "raw" {
		return nil, fmt.Errorf("nats sink: format %q is not %s", cfg.Format, natsFormatAccepted)
	}
	subj := cfg.compiled
	if subj == nil {
		var err error
		if subj, err = compileSubject(cfg.Subject, cfg.Host); err != nil {
			return nil, fmt.Errorf("nats sink: %w", err)
		}
	}
	bootID := cfg.BootID
	if bootID == "" {
		b, err := os.ReadFile(bootIDPath)
		if err != nil {
			return nil, fmt.Errorf("nats sink: reading the boot id: %w", err)
		}
		bootID = strings.TrimSpace(string(b))
	}
	s := &NATS{
		cfg:      cfg,
		enc:      enc,
		body:     newBodyEncoder(enc, cfg.Body),
		c:        c,
		met:      m,
		log:      log,
		ctx:      cfg.Context,
		subj:     subj,
		raw:      cfg.Format == "raw",
		idPrefix: msgIDPrefix(bootID, cfg.Host, cfg.Name),
		urls:     RedactURLs(cfg.URL),
		subjects: make(subjCache),
		nums:     make(strCache),
		l:        newLedger[natsMsg](cfg.MaxInFlight, cfg.JetStream),
		warned:   ratelog.New(time.Minute, 64),
		room:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		streamOK: cfg.Stream == nil,
	}
	opts, err := s.options()
	if err != nil {
		return nil, fmt.Errorf("nats sink: %w", err)
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink: %s: %w", s.urls, err)
	}
	s.nc = nc
	if cfg.JetStream {
		s.conf, err = newJSAcker(s)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats sink: %w", err)
		}
	} else {
		s.conf = newCoreConfirmer(s)
	}
	if m != nil {
		m.add(s)
	}
	s.wg.Add(1)
	go s.pump()
	s.conf.start()
	return s, nil
}

// Conn returns the sink's NATS connection, which other parts of the daemon
// (connector requests) share. It stays usable until Close.
func (s *NATS) Conn() *nats.Conn { return s.nc }

// Pending returns the messages the sink holds without an outcome yet:
// published and not yet acknowledged (JetStream) or confirmed (core), or
// waiting to be published. It implements Pender.
func (s *NATS) Pending() int { return int(s.held.Load()) }

// Ready returns nil while the sink is connected and its publishes make
// progress (see the confirmer's readyLocked).
func (s *NATS) Ready() error {
	if s.nc.IsClosed() {
		return errors.New("nats connection closed")
	}
	if !s.nc.IsConnected() {
		s.stateMu.Lock()
		err := s.connErr
		s.stateMu.Unlock()
		if err != nil {
			return fmt.Errorf("not connected to NATS at %s: %w", s.urls, err)
		}
		return fmt.Errorf("not connected to NATS at %s", s.urls)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall != nil {
		return s.stall
	}
	if !s.streamOK {
		return fmt.Errorf("jetstream stream %s not ready", s.cfg.Stream.Name)
	}
	return s.conf.readyLocked()
}

// Write encodes r and publishes it, or holds it while the sink cannot
// publish. It waits while MaxInFlight messages (or ReconnectBufferBytes
// bytes) await their outcome, except that a core NATS sink, while
// disconnected, holds up to ReconnectBufferBytes and drops the rest.
func (s *NATS) Write(r *event.Record) error {
	s.mu.Lock()
	for s.full() {
		if s.conf.holdsWhileDown() && !s.nc.IsConnected() {
			break // held up to the outage buffer below
		}
		s.conf.publishedLocked() // let the confirmer make room
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-s.ctx.Done():
			s.c.Drop(DropShutdown, 1)
			return nil
		}
		s.mu.Lock()
	}
	e := s.l.get()
	size := s.fill(&e.P, e.id, r)
	if s.conf.holdsWhileDown() && s.l.live > 0 && s.l.bytes+size > s.cfg.ReconnectBufferBytes {
		s.l.discard(e)
		s.mu.Unlock()
		s.c.Drop(DropOutage, 1)
		s.warnEvery("outage", "NATS outage buffer full; dropping messages", zap.String("url", s.urls), zap.Int("reconnect_buffer_bytes", s.cfg.ReconnectBufferBytes))
		return nil
	}
	s.l.hold(e, size)
	s.held.Store(int64(s.l.live))
	if s.streamOK && s.nc.IsConnected() {
		s.publishLocked(e, time.Time{})
		s.conf.publishedLocked()
	}
	s.mu.Unlock()
	return nil
}

// full reports whether Write must wait (or, core NATS while disconnected,
// hold only what the outage buffer takes).
func (s *NATS) full() bool {
	return s.l.live >= s.cfg.MaxInFlight || s.l.bytes >= s.cfg.ReconnectBufferBytes
}

// connNum returns the number of the client's current connection (its
// reconnect count). The client increments it, under its own lock, when a
// new connection is established and before anything can be written to it.
// Read before a publish that succeeds, it names the connection the
// message went out on: the client has no reconnect buffer
// (ReconnectBufSize(-1)), so a publish succeeds only onto the connection
// that is live at that moment, which is this one or, when a reconnect
// completed in between, a later one. The later case can only make the
// sink send a message again (a duplicate), never count one it lost.
//
// The number must come from the client, not from the reconnect handler:
// the client runs handlers asynchronously, after it has already started
// taking publishes on the new connection. Messages published in between
// were labelled with the old number and sent a second time once the
// handler ran (issue 11: a whole outage's held messages delivered twice).
func (s *NATS) connNum() uint64 { return s.nc.Stats().Reconnects }

// publishLocked hands e to the client. A message the client cannot take
// now stays held; one it can never take is failed. A zero now is read
// when needed (a core publish that succeeds does not need it).
func (s *NATS) publishLocked(e *entry, now time.Time) {
	conn := s.connNum()
	err := s.nc.PublishMsg(&e.P.msg)
	if now.IsZero() && (err != nil || s.cfg.JetStream) {
		now = time.Now()
	}
	switch {
	case err == nil:
		s.l.published(e, conn, s.conf.ackDeadline(now))
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrInvalidMsg):
		s.warnEvery("pub:"+err.Error(), "NATS refused a message; counting it as failed", zap.String("subject", e.P.msg.Subject), zap.Error(err))
		s.finishLocked(e, false)
	default: // disconnected meanwhile, not yet connected: later
		s.l.retry(e, now.Add(100*time.Millisecond))
	}
}

// finishLocked counts e (sent when ok, else failed) unless it was counted
// already, and wakes a Write waiting for room.
func (s *NATS) finishLocked(e *entry, ok bool) {
	if !s.l.finish(e) {
		return
	}
	s.countLocked(1, ok)
}

// countLocked counts n finished messages.
func (s *NATS) countLocked(n int, ok bool) {
	if n == 0 {
		return
	}
	if ok {
		s.c.Sent.Add(float64(n))
	} else {
		s.c.Failed.Add(float64(n))
	}
	s.held.Store(int64(s.l.live))
	s.wakeWriter()
}

// Flush returns at once: the client writes what it buffered from its own
// goroutine, and outcomes are counted as they come (core NATS: the
// confirmer's round trips, which every Write starts; JetStream: the acks).
// Waiting here for a round trip, as earlier versions did, cost a PING and
// two goroutine wake-ups per runner batch (issue 14: most of the CPU a
// core NATS message cost). Close waits for what is outstanding.
func (s *NATS) Flush(context.Context) error { return nil }

// Close waits until every held message is acknowledged, or ctx ends, or
// DrainTimeout passes; what is left is counted as failed. Then it closes
// the connection.
func (s *NATS) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := s.l.live
		s.mu.Unlock()
		if n == 0 {
			break
		}
		timeout := min(s.cfg.AckTimeout, 500*time.Millisecond)
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		if timeout > 0 {
			s.conf.confirm(timeout)
		}
		s.poke()
		select {
		case <-ctx.Done():
		case <-s.room:
			continue
		case <-tick.C:
			continue
		}
		break
	}
	s.mu.Lock()
	s.closing = true
	left := s.l.finishAll()
	s.countLocked(left, false)
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
	if left > 0 {
		s.log.Warn("closing the NATS sink with unacknowledged messages; counted as failed", zap.Int("failed", left))
	}
	s.nc.Close()
	if s.met != nil {
		s.met.remove(s)
	}
	return nil
}
