package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/schema"
)

// NATSConfig is a NATS sink's configuration: the keys of its section of
// the config file, decoded, defaulted and validated here, and what NewNATS
// takes. A new key is a field here, its default in SetDefaults and its
// check in Validate.
type NATSConfig struct {
	URL     string `mapstructure:"url"`     // one or several servers, comma-separated
	Subject string `mapstructure:"subject"` // template over {host} {idx} {val} {event} {cpu} {container}
	Format  string `mapstructure:"format"`  // "json" (the JSON line) or "raw" (the cn_msg payload)

	// JetStream publishes with acknowledgements: at most MaxInFlight
	// unacknowledged, each retried with the same Nats-Msg-Id until it is
	// acknowledged. Without it the sink publishes to core NATS and confirms
	// delivery to the server with PING round trips while messages are
	// unconfirmed, waiting for them only when MaxInFlight are.
	JetStream   bool          `mapstructure:"jetstream"`
	MaxInFlight int           `mapstructure:"max_in_flight"`
	AckTimeout  time.Duration `mapstructure:"ack_timeout"` // per attempt; also bounds a confirmation round trip
	// ReconnectBufferBytes bounds, in message bytes, what the sink holds
	// while it cannot publish. Core NATS: what does not fit is dropped
	// (reason outage_buffer_full). JetStream: Write waits for room, and the
	// runner's queue holds the rest.
	ReconnectBufferBytes int           `mapstructure:"reconnect_buffer_bytes"`
	DrainTimeout         time.Duration `mapstructure:"drain_timeout"` // Close waits at most this long for acks
	// MaxReconnectWait caps the pause between reconnect rounds, which
	// starts at ReconnectWait and doubles, with up to 25 % jitter: a
	// fleet's hosts spread their reconnects over it after an outage.
	MaxReconnectWait time.Duration `mapstructure:"max_reconnect_wait"`

	User         string      `mapstructure:"user"`
	Password     string      `mapstructure:"password"`
	Token        string      `mapstructure:"token"`
	NkeySeedFile string      `mapstructure:"nkey_seed_file"`
	CredsFile    string      `mapstructure:"creds_file"`
	TLS          TLSConfig   `mapstructure:"tls"`
	Stream       *NATSStream `mapstructure:"stream"` // created or updated on connect when set
	// SchemaConfig: the document a format json message holds (the native
	// line, or a schema's).
	SchemaConfig `mapstructure:",squash"`

	// Not keys of the config file: set by whoever builds the sink (New
	// from its Env; tests).

	Name string `mapstructure:"-"` // the sink's name: metrics label and connection name
	Host string `mapstructure:"-"` // {host}, Cn-Host and the Nats-Msg-Id
	// Product is this build, named in schema documents.
	Product schema.Product `mapstructure:"-"`
	// ReconnectWait is the first pause between reconnect rounds.
	ReconnectWait time.Duration `mapstructure:"-"`
	// BootID starts every Nats-Msg-Id (then Host and Name); "" reads
	// /proc/sys/kernel/random/boot_id.
	BootID string `mapstructure:"-"`
	// Context ends the sink's waits: a Write blocked on a full in-flight
	// window counts its record as dropped (reason shutdown) once it ends.
	// The daemon passes its sinks' context, cancelled when draining runs
	// out of time. Nil means never.
	Context context.Context `mapstructure:"-"`
	// Options are appended to the connection options (tests use a custom
	// dialer).
	Options []nats.Option `mapstructure:"-"`
}

// NATSStream is a NATS sink's stream section: the stream a JetStream sink
// creates or updates.
type NATSStream struct {
	Name            string        `mapstructure:"name"`
	Subjects        []string      `mapstructure:"subjects"`
	Storage         string        `mapstructure:"storage"` // file, memory
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	Replicas        int           `mapstructure:"replicas"`
}

// NATS sink defaults. The queue holds a 5 s outage at 10 000 msg/s with
// room to spare: about 13 s, even when every message arrives in a batch
// of its own (about 1 KiB of queue each).
const (
	DefaultNATSQueueSize       = 131072
	DefaultNATSQueueMaxBytes   = 128 << 20
	DefaultSubject             = "cn.{host}.{idx}.{val}"
	DefaultMaxInFlight         = 4096
	DefaultAckTimeout          = 5 * time.Second
	DefaultReconnectBufferSize = 8 << 20
	DefaultNATSDrainTimeout    = 10 * time.Second
	DefaultDuplicateWindow     = 2 * time.Minute
	defaultReconnectWait       = 250 * time.Millisecond
	defaultMaxReconnectWait    = 2 * time.Second
)

// SetDefaults implements TypeConfig: every key left out gets its default;
// drain_timeout defaults to the daemon's shutdown_timeout, which bounds
// it anyway.
func (c *NATSConfig) SetDefaults(d DaemonKeys) {
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Format == "" {
		c.Format = "json"
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.ReconnectBufferBytes == 0 {
		c.ReconnectBufferBytes = DefaultReconnectBufferSize
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultNATSDrainTimeout
		if d.ShutdownTimeout > 0 {
			c.DrainTimeout = d.ShutdownTimeout
		}
	}
	if st := c.Stream; st != nil {
		if st.Storage == "" {
			st.Storage = "file"
		}
		if st.DuplicateWindow == 0 {
			st.DuplicateWindow = DefaultDuplicateWindow
		}
		if st.Replicas == 0 {
			st.Replicas = 1
		}
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = defaultReconnectWait
	}
	if c.MaxReconnectWait == 0 {
		c.MaxReconnectWait = max(c.ReconnectWait, defaultMaxReconnectWait)
	}
}

// QueueDefaults implements TypeConfig.
func (c *NATSConfig) QueueDefaults() (int, int) {
	return DefaultNATSQueueSize, DefaultNATSQueueMaxBytes
}

// New implements TypeConfig.
func (c *NATSConfig) New(env Env) (Sink, error) {
	cfg := *c
	cfg.Name, cfg.Host, cfg.Context, cfg.Product = env.Name, env.Host, env.Context, env.Product
	return NewNATS(cfg, env.Encoder, env.Counters, env.NATSMetrics, env.Log)
}

// Validate implements TypeConfig. Besides the keys, it checks what NewNATS
// would reject: secret and TLS files exist, are regular files, and secret
// files are not readable by group or others.
func (c *NATSConfig) Validate(d DaemonKeys) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.URL == "" {
		bad("url", "required for a nats sink")
	}
	if err := CheckSubjectTemplate(c.Subject); err != nil {
		bad("subject", "%v", err)
	} else if _, err := compileSubject(c.Subject, d.Host); err != nil {
		bad("subject", "%v", err)
	}
	if c.Format != "json" && c.Format != "raw" {
		bad("format", "%q is not %s", c.Format, natsFormatAccepted)
	}
	if err := c.validateWith(c.Format != "raw", "this nats sink has format: raw, which publishes the connector payload (set format: json)"); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInFlight < 1 {
		bad("max_in_flight", "%d: must be at least 1", c.MaxInFlight)
	}
	if c.AckTimeout <= 0 {
		bad("ack_timeout", "%s: must be positive", c.AckTimeout)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout", "%s: must not be negative", c.DrainTimeout)
	}
	if c.DrainTimeout > d.ShutdownTimeout && d.ShutdownTimeout > 0 {
		bad("drain_timeout", "%s is longer than shutdown_timeout (%s), which bounds every sink's drain: lower it or raise shutdown_timeout",
			c.DrainTimeout, d.ShutdownTimeout)
	}
	if c.MaxReconnectWait < c.ReconnectWait {
		bad("max_reconnect_wait", "%s: must be at least %s", c.MaxReconnectWait, c.ReconnectWait)
	}
	if c.ReconnectBufferBytes < 0 {
		bad("reconnect_buffer_bytes", "%d: must not be negative", c.ReconnectBufferBytes)
	}
	auth := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NkeySeedFile != "", c.CredsFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad("user", "set only one of user/password, token, nkey_seed_file, creds_file")
	}
	if (c.User == "") != (c.Password == "") {
		bad("password", "user and password go together")
	}
	if err := c.TLS.pairErr(); err != nil {
		errs = append(errs, err)
	}
	if st := c.Stream; st != nil {
		if !c.JetStream {
			bad("stream", "needs jetstream: true")
		}
		if st.Name == "" {
			bad("stream.name", "required")
		}
		if st.Storage != "file" && st.Storage != "memory" {
			bad("stream.storage", "%q is not %s", st.Storage, streamStorageAccepted)
		}
	}
	errs = append(errs, checkFiles(append([]configFile{
		{"nkey_seed_file", c.NkeySeedFile, true},
		{"creds_file", c.CredsFile, true},
	}, c.TLS.files()...))...)
	return errors.Join(errs...)
}

// secretModeError is a secret file group or others can read; it is an
// ErrSecretFileMode.
type secretModeError string

func (e secretModeError) Error() string { return string(e) }
func (e secretModeError) Unwrap() error { return ErrSecretFileMode }

// checkConfigFile checks that path is a readable regular file and, for a
// secret, that group and others cannot read it.
func checkConfigFile(path string, secret bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%q: %w", path, errors.Unwrap(err))
	}
	if st.IsDir() {
		return fmt.Errorf("%q is a directory, not a file", path)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%q is not a regular file (%s)", path, st.Mode().Type())
	}
	if p := st.Mode().Perm(); secret && p&0o044 != 0 {
		return secretModeError(fmt.Sprintf("%q has mode %04o: a secret must not be readable by group or others; want 0600 or 0400", path, p))
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%q: %w", path, errors.Unwrap(err))
	}
	f.Close()
	return nil
}

// subjectFields are the names a NATS subject template may use.
var subjectFields = []string{"host", "idx", "val", "event", "cpu", "container"}

// CheckSubjectTemplate reports whether t is a usable publish subject
// template: known fields only, no white space, empty tokens or wildcards.
func CheckSubjectTemplate(t string) error {
	if _, err := compileSubject(t, "h"); err != nil {
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "subject: "), "subject ")
		if strings.Contains(msg, "unknown field") {
			msg += "; known: " + strings.Join(subjectFields, ", ")
		}
		return errors.New(msg)
	}
	if strings.ContainsAny(t, " \t\r\n") || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || strings.Contains(t, "..") {
		return fmt.Errorf("%q is not a valid subject", t)
	}
	for tok := range strings.SplitSeq(t, ".") {
		if tok == "*" || tok == ">" {
			return fmt.Errorf("%q: wildcard %s in a publish subject", t, tok)
		}
	}
	return nil
}
