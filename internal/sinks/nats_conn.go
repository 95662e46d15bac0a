package sinks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// ErrSecretFileMode is returned for a credentials, seed or key file that
// group or others can read.
var ErrSecretFileMode = errors.New("secret file is readable by group or others")

// Connection setup and state: options, authentication, TLS, and the
// client's state-change handlers, each change logged once.

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
	auth, err := AuthOptions(cfg)
	if err != nil {
		return nil, err
	}
	return append(append(opts, auth...), cfg.Options...), nil
}

// AuthOptions are the options for cfg's credentials and TLS, with the
// checks the sink makes before it connects (a secret file group or others
// can read is refused). cnbridged check dials with the same.
func AuthOptions(cfg NATSConfig) ([]nats.Option, error) {
	var opts []nats.Option
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
	if cfg.TLS.Enabled() {
		tc, err := cfg.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// checkSecretFile refuses a secret file that is missing, not a regular
// file, or readable by group or others (an ErrSecretFileMode).
func checkSecretFile(key, path string) error {
	if err := checkConfigFile(path, true); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// RedactURLs hides passwords and tokens in a server list.
func RedactURLs(list string) string {
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
	s.connErr, s.logged = nil, ""
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
	held := s.l.live
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
	held := s.l.live
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
	if s.warned.Allow(key, time.Now()) {
		s.log.Warn(msg, fields...)
	}
}

// Probe implements Prober: it connects to each server with the sink's
// credentials and TLS (AuthOptions: the same options and secret-file
// checks) and authenticates.
func (c *NATSConfig) Probe(ctx context.Context, name string) []Probe {
	return c.probe(ctx, "sinks."+name, "this sink")
}

// probe is Probe for the connection keys under key, which what names in
// the advice.
func (c *NATSConfig) probe(_ context.Context, key, what string) []Probe {
	auth, err := AuthOptions(*c)
	if err != nil {
		return []Probe{{Detail: err.Error(), Advice: "correct " + key + " (run refuses to start " + what + " as it is)"}}
	}
	opts := append([]nats.Option{nats.Name("cnbridged check"), nats.Timeout(3 * time.Second), nats.NoReconnect()}, auth...)
	var out []Probe
	for u := range strings.SplitSeq(c.URL, ",") {
		u = strings.TrimSpace(u)
		nc, err := nats.Connect(u, opts...)
		if err != nil {
			advice := "start the server or correct " + key + ".url (cnbridged runs meanwhile, reconnecting)"
			if msg := strings.ToLower(err.Error()); strings.Contains(msg, "authorization") || strings.Contains(msg, "authentication") {
				advice = "correct the credentials of " + key + " (user/password, token, nkey_seed_file or creds_file)"
			}
			out = append(out, Probe{Detail: RedactURLs(u) + ": " + err.Error(), Advice: advice})
			continue
		}
		out = append(out, Probe{OK: true, Detail: RedactURLs(u) + " reachable, authenticated (server " + nc.ConnectedServerName() + ")"})
		nc.Close()
	}
	return out
}
