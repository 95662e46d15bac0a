package sinks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
)

// NATSConfig configures a NATS sink.
type NATSConfig struct {
	Name    string // the sink's name: metrics label and connection name
	URL     string // one or several servers, comma-separated
	Subject string // template over {host} {idx} {val} {event} {cpu}
	Format  string // "json" (the JSON line) or "raw" (the cn_msg payload)
	Host    string // {host} and Cn-Host

	// JetStream publishes with acknowledgements: at most MaxInFlight
	// unacknowledged, each retried with the same Nats-Msg-Id until it is
	// acknowledged. Without it the sink publishes to core NATS and confirms
	// delivery to the server with a PING round trip at least every
	// MaxInFlight messages and whenever its queue runs empty.
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
}

// NATSTLS configures transport security. When any key is set, the sink
// connects only over TLS: there is no plaintext fallback.
type NATSTLS struct {
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool
}

func (t NATSTLS) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// NATSStream is the stream a JetStream sink creates or updates.
type NATSStream struct {
	Name            string
	Subjects        []string
	Storage         string // file, memory
	DuplicateWindow time.Duration
	Replicas        int
}

// ErrSecretFileMode is returned for a credentials, seed or key file that
// group or others can read.
var ErrSecretFileMode = errors.New("secret file is readable by group or others")

// bootIDPath is where the kernel publishes the boot id.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// Entry states.
const (
	stUnsent = iota // waiting to be published (again)
	stSent          // published, waiting for its ack or confirmation
	stDone          // acknowledged or given up; left in the queue until passed
)

// entry is one message the sink holds until it is acknowledged: encoded
// once, sent again as is.
type entry struct {
	msg      nats.Msg
	body     []byte
	vals     [16]string // header values; the header map points into it
	keys     uint32     // the headers the map holds (bit* constants)
	id       uint64     // JetStream reply token
	pubSeq   uint64     // order of the latest publish on the connection
	conn     uint64     // connection number (nats Reconnects) of the latest publish
	state    uint8
	attempts int
	due      time.Time // stUnsent: not before; stSent (JetStream): ack deadline
	size     int
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
	c        *Counters
	met      *NATSMetrics
	log      *zap.Logger
	ctx      context.Context
	nc       *nats.Conn
	js       jetstream.JetStream
	sub      *nats.Subscription
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
	q        []*entry // publish order; stDone entries are skipped
	head     int
	live     int // entries not done
	sent     int // entries in stSent
	bytes    int // size of live entries
	byID     map[uint64]*entry
	free     []*entry
	nextID   uint64
	pubSeq   uint64
	streamOK bool
	stall    error // why publishing does not progress (JetStream)
	// lastAck is when the latest acknowledgement arrived, or the first
	// message went out into an empty window (JetStream).
	lastAck time.Time
	closing bool
	warned  map[string]time.Time

	room chan struct{} // an entry finished, or the connection went down
	kick chan struct{} // the pump should look now

	// Core NATS confirmation runs in its own goroutine, so that Write never
	// waits for a round trip unless MaxInFlight messages are unconfirmed.
	confirming bool          // the confirmer is running (under mu)
	ckick      chan struct{} // wake the confirmer

	done chan struct{}
	wg   sync.WaitGroup

	held       atomic.Int64
	reconnects atomic.Uint64

	stateMu sync.Mutex
	connErr error
	logged  string // last connect error logged in this outage
	everUp  bool
}

// NewNATS connects (in the background: the sink starts and stays up while
// the servers are down) and returns the sink. It fails only for
// configuration problems: an unreadable or group/other-readable secret
// file, a bad template, an invalid TLS file.
func NewNATS(cfg NATSConfig, enc *event.Encoder, c *Counters, m *NATSMetrics, log *zap.Logger) (*NATS, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.ReconnectBufferBytes <= 0 {
		cfg.ReconnectBufferBytes = 8 << 20
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
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
		return nil, fmt.Errorf("nats sink: format %q is not json or raw", cfg.Format)
	}
	subj, err := compileSubject(cfg.Subject, cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("nats sink: %w", err)
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
		c:        c,
		met:      m,
		log:      log,
		ctx:      cfg.Context,
		subj:     subj,
		raw:      cfg.Format == "raw",
		idPrefix: msgIDPrefix(bootID, cfg.Host, cfg.Name),
		urls:     redactURLs(cfg.URL),
		subjects: make(subjCache),
		nums:     make(strCache),
		byID:     make(map[uint64]*entry),
		warned:   make(map[string]time.Time),
		room:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		ckick:    make(chan struct{}, 1),
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
		s.inbox = nats.NewInbox() + "."
		s.sub, err = nc.Subscribe(s.inbox+"*", s.onAck)
		if err == nil {
			err = s.sub.SetPendingLimits(max(65536, 4*cfg.MaxInFlight), 64<<20)
		}
		if err == nil && cfg.Stream != nil {
			s.js, err = jetstream.New(nc)
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats sink: %w", err)
		}
	}
	if m != nil {
		m.add(s)
	}
	s.wg.Add(1)
	go s.pump()
	if !cfg.JetStream {
		s.wg.Add(1)
		go s.confirmer()
	}
	return s, nil
}

// Conn returns the sink's NATS connection, which other parts of the daemon
// (connector requests) share. It stays usable until Close.
func (s *NATS) Conn() *nats.Conn { return s.nc }

// options builds the connection options: reconnect forever with backoff,
// authentication, TLS and the state-change handlers.
func (s *NATS) options() ([]nats.Option, error) {
	cfg := s.cfg
	opts := []nats.Option{
		nats.Name("cnbridged " + cfg.Host + " " + cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(), // a fixed credential on the server side must let us in again
		// No client-side reconnect buffer: the sink holds what it cannot
		// publish itself. A publish then succeeds only onto a live
		// connection, so the connection number read before it names the
		// connection the message went out on (see connNum).
		nats.ReconnectBufSize(-1),
		nats.CustomReconnectDelay(s.reconnectDelay),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(s.onConnect),
		nats.ReconnectHandler(s.onReconnect),
		nats.DisconnectErrHandler(s.onDisconnect),
		nats.ReconnectErrHandler(s.onConnectError),
		nats.ClosedHandler(s.onClosed),
		nats.ErrorHandler(s.onAsyncError),
	}
	switch {
	case cfg.User != "" || cfg.Password != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NkeySeedFile != "":
		if err := checkSecretFile("nkey_seed_file", cfg.NkeySeedFile); err != nil {
			return nil, err
		}
		o, err := nats.NkeyOptionFromSeed(cfg.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case cfg.CredsFile != "":
		if err := checkSecretFile("creds_file", cfg.CredsFile); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS.enabled() {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return append(opts, cfg.Options...), nil
}

func tlsConfig(t NATSTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // off unless configured
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificates", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if err := checkSecretFile("tls.key_file", t.KeyFile); err != nil {
			return nil, err
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// checkSecretFile refuses a file that group or others can read.
func checkSecretFile(key, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if p := st.Mode().Perm(); p&0o044 != 0 {
		return fmt.Errorf("%s %s (mode %04o; want 0600 or 0400): %w", key, path, p, ErrSecretFileMode)
	}
	return nil
}

// redactURLs hides passwords and tokens in a server list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if at := strings.LastIndexByte(p, '@'); at >= 0 {
			start := strings.Index(p, "://")
			if start < 0 || start > at {
				start = -3
			}
			p = p[:start+3] + "xxxxx" + p[at:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// reconnectDelay doubles the pause per round over the server list, from
// ReconnectWait up to MaxReconnectWait, plus up to 25 % jitter.
func (s *NATS) reconnectDelay(attempts int) time.Duration {
	d := s.cfg.ReconnectWait
	for i := 1; i < attempts && d < s.cfg.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxReconnectWait)
	return d + rand.N(d/4+1)
}

// Connection state changes, each logged once.

func (s *NATS) onConnect(nc *nats.Conn) {
	s.stateMu.Lock()
	s.connErr, s.logged, s.everUp = nil, "", true
	s.stateMu.Unlock()
	s.log.Info("connected to NATS", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("server_id", nc.ConnectedServerId()))
	s.poke()
}

func (s *NATS) onReconnect(nc *nats.Conn) {
	s.reconnects.Add(1)
	s.stateMu.Lock()
	s.connErr, s.logged = nil, ""
	s.stateMu.Unlock()
	s.mu.Lock()
	held := s.live
	if s.cfg.Stream != nil {
		s.streamOK = false // a memory stream may be gone; make sure again
	}
	s.mu.Unlock()
	s.log.Info("reconnected to NATS", zap.String("url", nc.ConnectedUrlRedacted()), zap.Int("held", held))
	s.poke()
}

func (s *NATS) onDisconnect(_ *nats.Conn, err error) {
	s.stateMu.Lock()
	if err != nil {
		s.connErr = err
	}
	s.stateMu.Unlock()
	if s.isClosing() {
		return
	}
	s.mu.Lock()
	held := s.live
	s.mu.Unlock()
	s.wakeWriter() // a core Write waiting for confirmations holds or drops instead
	s.log.Warn("disconnected from NATS; holding messages until reconnected", zap.String("url", s.urls), zap.Error(err), zap.Int("held", held))
}

// onConnectError is called for every failed attempt; it logs only when the
// error differs from the last one logged since the last state change.
func (s *NATS) onConnectError(_ *nats.Conn, err error) {
	if err == nil || errors.Is(err, nats.ErrNoServers) {
		return // the initial failure says nothing the next attempt won't say better
	}
	s.stateMu.Lock()
	s.connErr = err
	msg := err.Error()
	first := msg != s.logged
	s.logged = msg
	s.stateMu.Unlock()
	if first {
		s.log.Warn("cannot connect to NATS; retrying with backoff", zap.String("url", s.urls), zap.Error(err))
	}
}

func (s *NATS) onClosed(*nats.Conn) {
	if s.isClosing() {
		s.log.Debug("NATS connection closed")
		return
	}
	s.log.Error("NATS connection closed unexpectedly; the sink cannot publish", zap.String("url", s.urls))
}

func (s *NATS) onAsyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	s.mu.Lock()
	if s.cfg.JetStream && errors.Is(err, nats.ErrPermissionViolation) {
		s.stall = err
	}
	s.mu.Unlock()
	s.warnEvery("async:"+err.Error(), "NATS reported an error", zap.Error(err))
}

func (s *NATS) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *NATS) wakeWriter() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

func (s *NATS) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// warnEvery logs a warning at most once a minute per key.
func (s *NATS) warnEvery(key, msg string, fields ...zap.Field) {
	now := time.Now()
	s.stateMu.Lock()
	last, ok := s.warned[key]
	if ok && now.Sub(last) < time.Minute {
		s.stateMu.Unlock()
		return
	}
	if len(s.warned) > 64 {
		clear(s.warned)
	}
	s.warned[key] = now
	s.stateMu.Unlock()
	s.log.Warn(msg, fields...)
}

// Pending returns the messages the sink holds without an outcome yet:
// published and not yet acknowledged (JetStream) or confirmed (core), or
// waiting to be published. It implements Pender.
func (s *NATS) Pending() int { return int(s.held.Load()) }

// ackStall is how long a JetStream sink with messages in flight may go
// without an acknowledgement before Ready reports it (well within the
// second /readyz promises).
const ackStall = 500 * time.Millisecond

// Ready returns nil while the sink is connected and, with JetStream, its
// publishes are being acknowledged: an error once ackStall passes without
// one while messages are in flight.
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
	if s.cfg.JetStream && s.sent > 0 {
		if d := time.Since(s.lastAck); d > ackStall {
			return fmt.Errorf("jetstream: %d messages unacknowledged, no acknowledgement for %s", s.sent, d.Round(time.Millisecond))
		}
	}
	if !s.streamOK {
		return fmt.Errorf("jetstream stream %s not ready", s.cfg.Stream.Name)
	}
	return nil
}

// Write encodes r and publishes it, or holds it while the sink cannot
// publish. With JetStream it waits while MaxInFlight messages (or
// ReconnectBufferBytes bytes) await acknowledgement. With core NATS it
// waits, while connected, when MaxInFlight messages (or
// ReconnectBufferBytes bytes) await confirmation by the confirmer's round
// trips; while disconnected it holds up to ReconnectBufferBytes and drops
// the rest.
func (s *NATS) Write(r *event.Record) error {
	s.mu.Lock()
	for s.full() {
		if !s.cfg.JetStream && !s.nc.IsConnected() {
			break // held up to the outage buffer below
		}
		s.kickConfirmerLocked()
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-s.ctx.Done():
			s.c.Drop(DropShutdown, 1)
			return nil
		}
		s.mu.Lock()
	}
	e := s.getEntryLocked()
	s.nextID++
	e.id = s.nextID
	s.fill(e, r)
	if !s.cfg.JetStream && s.live > 0 && s.bytes+e.size > s.cfg.ReconnectBufferBytes {
		s.putEntryLocked(e)
		s.mu.Unlock()
		s.c.Drop(DropOutage, 1)
		s.warnEvery("outage", "NATS outage buffer full; dropping messages", zap.String("url", s.urls), zap.Int("reconnect_buffer_bytes", s.cfg.ReconnectBufferBytes))
		return nil
	}
	e.state, e.attempts, e.due = stUnsent, 0, time.Time{}
	if s.cfg.JetStream {
		s.byID[e.id] = e
	}
	s.q = append(s.q, e)
	s.live++
	s.bytes += e.size
	s.held.Store(int64(s.live))
	if s.streamOK && s.nc.IsConnected() {
		s.publishLocked(e, time.Time{})
		if !s.cfg.JetStream {
			s.kickConfirmerLocked()
		}
	}
	s.mu.Unlock()
	return nil
}

// full reports whether Write must wait (or, core NATS while disconnected,
// hold only what the outage buffer takes).
func (s *NATS) full() bool {
	return s.live >= s.cfg.MaxInFlight || s.bytes >= s.cfg.ReconnectBufferBytes
}

// kickConfirmerLocked starts a confirmation round unless one is running.
func (s *NATS) kickConfirmerLocked() {
	if s.confirming || s.cfg.JetStream {
		return
	}
	s.confirming = true
	select {
	case s.ckick <- struct{}{}:
	default:
	}
}

func (s *NATS) getEntryLocked() *entry {
	if n := len(s.free); n > 0 {
		e := s.free[n-1]
		s.free = s.free[:n-1]
		return e
	}
	return &entry{}
}

// putEntryLocked keeps e for reuse. The free list keeps at most
// MaxInFlight entries: what an outage made the sink hold beyond that is
// left to the garbage collector once delivered.
func (s *NATS) putEntryLocked(e *entry) {
	if len(s.free) < s.cfg.MaxInFlight {
		s.free = append(s.free, e)
	}
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
	err := s.nc.PublishMsg(&e.msg)
	if now.IsZero() && (err != nil || s.cfg.JetStream) {
		now = time.Now()
	}
	switch {
	case err == nil:
		if e.state != stSent {
			if s.sent == 0 && s.cfg.JetStream {
				s.lastAck = now // the window starts waiting now
			}
			s.sent++
		}
		e.state, e.conn, e.pubSeq = stSent, conn, s.pubSeq
		if s.cfg.JetStream {
			e.due = now.Add(s.cfg.AckTimeout)
		}
		e.attempts++
		s.pubSeq++
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrInvalidMsg):
		s.warnEvery("pub:"+err.Error(), "NATS refused a message; counting it as failed", zap.String("subject", e.msg.Subject), zap.Error(err))
		s.finishLocked(e, false)
	default: // disconnected meanwhile, reconnect buffer full, not yet connected: later
		if e.state == stSent {
			s.sent--
		}
		e.state, e.due = stUnsent, now.Add(100*time.Millisecond)
	}
}

// finishLocked counts e and retires it.
func (s *NATS) finishLocked(e *entry, ok bool) {
	if e.state == stDone {
		return
	}
	if e.state == stSent {
		s.sent--
	}
	e.state = stDone
	s.live--
	s.bytes -= e.size
	delete(s.byID, e.id)
	if ok {
		s.c.Sent.Inc()
	} else {
		s.c.Failed.Inc()
	}
	s.held.Store(int64(s.live))
	select {
	case s.room <- struct{}{}:
	default:
	}
}

// advanceLocked recycles finished entries at the head of the queue and
// compacts it when finished entries pile up behind a slow one.
func (s *NATS) advanceLocked() {
	for s.head < len(s.q) && s.q[s.head].state == stDone {
		s.putEntryLocked(s.q[s.head])
		s.q[s.head] = nil
		s.head++
	}
	if s.head == len(s.q) {
		s.q, s.head = s.q[:0], 0
		return
	}
	if n := len(s.q) - s.head; n > 2*s.live+1024 || s.head > 4096 && s.head > n {
		kept := s.q[:0]
		for _, e := range s.q[s.head:] {
			if e.state == stDone {
				s.putEntryLocked(e)
			} else {
				kept = append(kept, e)
			}
		}
		clear(s.q[len(kept):])
		s.q, s.head = kept, 0
	}
}

// confirm sends a PING and, when its PONG comes back on the connection the
// messages went out on, counts every core message published before it as
// sent: the server has processed them. Messages published on an earlier
// connection are left for the pump to send again. It reports whether the
// round trip succeeded and whether messages were published meanwhile.
func (s *NATS) confirm(timeout time.Duration) (ok, more bool) {
	s.mu.Lock()
	if s.sent == 0 || !s.nc.IsConnected() {
		s.mu.Unlock()
		return false, false
	}
	upto := s.pubSeq
	ep := s.connNum()
	s.mu.Unlock()
	err := s.nc.FlushTimeout(timeout)
	if err != nil {
		return false, false
	}
	if s.connNum() != ep {
		// The PING may have gone out on a later connection than the
		// messages: it proves nothing about them.
		return false, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The queue is in publish order, except for messages sent again after a
	// failure: stop at the first message published after the PING. One
	// sent again meanwhile waits for the next round.
	for _, e := range s.q[s.head:] {
		if e.state != stSent || e.conn != ep {
			continue
		}
		if e.pubSeq >= upto {
			break
		}
		s.finishLocked(e, true)
	}
	s.advanceLocked()
	return true, s.sent > 0 && s.pubSeq > upto
}

// confirmPace is the least time between the confirmer's round trips while
// fewer than half of MaxInFlight messages are unconfirmed: under load, one
// PING per confirmPace rather than one per message.
const confirmPace = time.Millisecond

// confirmer confirms core messages with back-to-back round trips while
// messages are being published, so that Write only hands messages to the
// client. It sleeps while nothing is unconfirmed; Write and the pump wake
// it.
func (s *NATS) confirmer() {
	defer s.wg.Done()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.ckick:
		}
		for {
			ok, more := s.confirm(s.cfg.AckTimeout)
			s.mu.Lock()
			if !ok || !more {
				s.confirming = false
				s.mu.Unlock()
				break
			}
			hurry := s.sent >= s.cfg.MaxInFlight/2
			s.mu.Unlock()
			if hurry {
				continue
			}
			pace.Reset(confirmPace)
			select {
			case <-s.done:
				pace.Stop()
				return
			case <-pace.C:
			}
		}
	}
}

// onAck handles a JetStream publish acknowledgement.
func (s *NATS) onAck(m *nats.Msg) {
	id, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, s.inbox), 10, 64)
	if err != nil {
		return
	}
	var ack jsAck
	noResponders := len(m.Data) == 0 && m.Header.Get("Status") == "503"
	if !noResponders && !plainAck(m.Data) {
		var ok bool
		if ack, ok = decodeAck(m.Data); !ok {
			return // not an ack; the deadline will retry
		}
	}
	s.mu.Lock()
	s.lastAck = time.Now()
	e := s.byID[id]
	if e == nil {
		s.mu.Unlock()
		return // a late ack for a message already counted
	}
	switch {
	case noResponders:
		s.stall = fmt.Errorf("no JetStream stream answers for subject %s", e.msg.Subject)
		s.backoffLocked(e, time.Now())
	case ack.Error != nil && ack.Error.Code == 503:
		s.stall = fmt.Errorf("jetstream: %s", ack.Error.Description)
		s.backoffLocked(e, time.Now())
	case ack.Error != nil && ack.Error.ErrCode == errCodeDupInProcess:
		// An earlier copy of this message (same id) is still being stored,
		// for example a retry that crossed a slow acknowledgement: ask again
		// until the stream answers "stored" or "duplicate".
		s.backoffLocked(e, time.Now())
	case ack.Error != nil:
		subject := e.msg.Subject
		s.finishLocked(e, false)
		s.advanceLocked()
		s.mu.Unlock()
		s.warnEvery("jserr:"+ack.Error.Description, "JetStream rejected a message; counting it as failed",
			zap.String("subject", subject), zap.Int("err_code", ack.Error.ErrCode), zap.String("error", ack.Error.Description))
		return
	default:
		s.stall = nil
		s.finishLocked(e, true)
		s.advanceLocked()
	}
	s.mu.Unlock()
}

// errCodeDupInProcess is JetStream's err_code for a 409 "duplicate message
// id is in process" (JSStreamDuplicateMessageConflict).
const errCodeDupInProcess = 10158

// jsAck is a JetStream publish acknowledgement. An ack with "duplicate":
// true counts as sent: Nats-Msg-Ids name the daemon and sink (see
// appendMsgID), so the stored message with this id is this sink's own
// earlier copy.
type jsAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// decodeAck decodes an acknowledgement; ok is false for anything else.
func decodeAck(d []byte) (ack jsAck, ok bool) {
	if err := json.Unmarshal(d, &ack); err != nil || (ack.Error == nil && ack.Stream == "") {
		return jsAck{}, false
	}
	return ack, true
}

// ackPrefix starts every successful publish acknowledgement
// ({"stream":"NAME","seq":N} with optional "domain" and "duplicate").
var ackPrefix = []byte(`{"stream":"`)

// plainAck reports whether d is a successful acknowledgement, without the
// cost of decoding it: a named stream and no error. Anything else is
// decoded in full.
func plainAck(d []byte) bool {
	return len(d) > len(ackPrefix) && bytes.HasPrefix(d, ackPrefix) && d[len(ackPrefix)] != '"' &&
		!bytes.Contains(d, []byte(`"error"`))
}

// backoffLocked holds e back for a retry after 100 ms, doubling per
// attempt up to 2 s.
func (s *NATS) backoffLocked(e *entry, now time.Time) {
	d := 100 * time.Millisecond
	for i := 1; i < e.attempts && d < 2*time.Second; i++ {
		d *= 2
	}
	if e.state == stSent {
		s.sent--
	}
	e.state, e.due = stUnsent, now.Add(min(d, 2*time.Second))
}

// pump sends held messages once the connection is up, resends what a
// broken connection may have lost and what was not acknowledged in time,
// and confirms core messages the runner left unconfirmed.
func (s *NATS) pump() {
	defer s.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
		}
		s.service()
	}
}

func (s *NATS) service() {
	if !s.nc.IsConnected() {
		return
	}
	s.mu.Lock()
	ok := s.streamOK
	s.mu.Unlock()
	if !ok && !s.ensureStream() {
		return
	}
	now := time.Now()
	s.mu.Lock()
	ep := s.connNum()
	timeouts := 0
	for _, e := range s.q[s.head:] {
		switch {
		case e.state == stUnsent && !now.Before(e.due):
			s.publishLocked(e, now)
		case e.state == stSent && e.conn != ep:
			s.publishLocked(e, now)
		case e.state == stSent && s.cfg.JetStream && now.After(e.due):
			timeouts++
			s.publishLocked(e, now)
		}
	}
	if timeouts > 0 && s.stall == nil {
		s.stall = fmt.Errorf("jetstream: %d publishes not acknowledged within %s; retrying", timeouts, s.cfg.AckTimeout)
	}
	if !s.cfg.JetStream && s.sent > 0 {
		s.kickConfirmerLocked() // sent again, or left by a round that stopped early
	}
	s.mu.Unlock()
	if timeouts > 0 {
		s.warnEvery("timeout", "JetStream acknowledgements timed out; retrying with the same Nats-Msg-Id", zap.Int("messages", timeouts), zap.Duration("ack_timeout", s.cfg.AckTimeout))
	}
}

// ensureStream creates the configured stream, or updates it to the
// configuration. An existing stream that cannot be updated (a changed
// storage type) is used as it is, with a warning.
func (s *NATS) ensureStream() bool {
	st := s.cfg.Stream
	storage := jetstream.FileStorage
	if st.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	sc := jetstream.StreamConfig{
		Name:       st.Name,
		Subjects:   st.Subjects,
		Storage:    storage,
		Duplicates: st.DuplicateWindow,
		Replicas:   max(st.Replicas, 1),
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(s.cfg.AckTimeout, 2*time.Second))
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		if _, ierr := s.js.Stream(ctx, st.Name); ierr == nil {
			s.warnEvery("stream-update", "JetStream stream exists but could not be updated; publishing to it as it is", zap.String("stream", st.Name), zap.Error(err))
			err = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.stall = fmt.Errorf("jetstream stream %s: %w", st.Name, err)
		return false
	}
	if !s.streamOK {
		s.log.Debug("JetStream stream ready", zap.String("stream", st.Name))
	}
	s.streamOK, s.stall = true, nil
	return true
}

// Flush confirms core NATS messages with a round trip (JetStream messages
// are confirmed by their acks as they come).
func (s *NATS) Flush(ctx context.Context) error {
	if s.cfg.JetStream {
		return nil
	}
	timeout := s.cfg.AckTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout > 0 {
		s.confirm(timeout)
	}
	return nil
}

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
		n := s.live
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if !s.cfg.JetStream {
			timeout := min(s.cfg.AckTimeout, 500*time.Millisecond)
			if dl, ok := ctx.Deadline(); ok {
				timeout = min(timeout, time.Until(dl))
			}
			if timeout > 0 {
				s.confirm(timeout)
			}
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
	left := s.live
	for _, e := range s.q[s.head:] {
		s.finishLocked(e, false)
	}
	s.advanceLocked()
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
