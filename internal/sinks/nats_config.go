package sinks

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// NATSSinkConfig is a NATS sink's own config, as the config file gives it.
type NATSSinkConfig struct {
	URL                  string            `mapstructure:"url"`
	Subject              string            `mapstructure:"subject"`
	Format               string            `mapstructure:"format"` // json, raw
	JetStream            bool              `mapstructure:"jetstream"`
	MaxInFlight          int               `mapstructure:"max_in_flight"`
	AckTimeout           time.Duration     `mapstructure:"ack_timeout"`
	ReconnectBufferBytes int               `mapstructure:"reconnect_buffer_bytes"`
	DrainTimeout         time.Duration     `mapstructure:"drain_timeout"`
	User                 string            `mapstructure:"user"`
	Password             string            `mapstructure:"password"`
	Token                string            `mapstructure:"token"`
	NkeySeedFile         string            `mapstructure:"nkey_seed_file"`
	CredsFile            string            `mapstructure:"creds_file"`
	TLS                  NATSTLSConfig     `mapstructure:"tls"`
	Stream               *NATSStreamConfig `mapstructure:"stream"`
	SchemaConfig         `mapstructure:",squash"`

	// subject is Subject compiled for the host by Resolve.
	subject *subjectTemplate
}

// NATSTLSConfig is a NATS sink's tls section.
type NATSTLSConfig struct {
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// Enabled reports whether any TLS key is set.
func (t NATSTLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// NATSStreamConfig is a NATS sink's stream section.
type NATSStreamConfig struct {
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
)

// SetDefaults implements TypeConfig.
func (c *NATSSinkConfig) SetDefaults() {
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
}

// QueueDefaults implements TypeConfig.
func (c *NATSSinkConfig) QueueDefaults() (int, int) {
	return DefaultNATSQueueSize, DefaultNATSQueueMaxBytes
}

// Validate implements TypeConfig. Besides the keys, it checks what NewNATS
// would reject: secret and TLS files exist, are regular files, and secret
// files are not readable by group or others.
func (c *NATSSinkConfig) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.URL == "" {
		bad("url", "required for a nats sink")
	}
	if err := CheckSubjectTemplate(c.Subject); err != nil {
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
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "cert_file and key_file go together")
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
	for _, f := range []struct {
		key, path string
		secret    bool
	}{
		{"nkey_seed_file", c.NkeySeedFile, true},
		{"creds_file", c.CredsFile, true},
		{"tls.key_file", c.TLS.KeyFile, true},
		{"tls.cert_file", c.TLS.CertFile, false},
		{"tls.ca_file", c.TLS.CAFile, false},
	} {
		if f.path == "" {
			continue
		}
		if err := checkConfigFile(f.path, f.secret); err != nil {
			bad(f.key, "%v", err)
		}
	}
	return errors.Join(errs...)
}

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
		return fmt.Errorf("%q has mode %04o: a secret must not be readable by group or others; want 0600 or 0400", path, p)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%q: %w", path, errors.Unwrap(err))
	}
	f.Close()
	return nil
}

// Resolve compiles the subject template for host, once; NATSConfig hands
// the result to NewNATS. Validate must have passed.
func (c *NATSSinkConfig) Resolve(host string) error {
	t, err := compileSubject(c.Subject, host)
	if err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	c.subject = t
	return nil
}

// NATSConfig returns what NewNATS takes for the sink name on host.
func (c *NATSSinkConfig) NATSConfig(name, host string) NATSConfig {
	cfg := NATSConfig{
		Name:                 name,
		URL:                  c.URL,
		Subject:              c.Subject,
		Format:               c.Format,
		Host:                 host,
		JetStream:            c.JetStream,
		MaxInFlight:          c.MaxInFlight,
		AckTimeout:           c.AckTimeout,
		ReconnectBufferBytes: c.ReconnectBufferBytes,
		DrainTimeout:         c.DrainTimeout,
		User:                 c.User,
		Password:             c.Password,
		Token:                c.Token,
		NkeySeedFile:         c.NkeySeedFile,
		CredsFile:            c.CredsFile,
		TLS: NATSTLS{
			CAFile:             c.TLS.CAFile,
			CertFile:           c.TLS.CertFile,
			KeyFile:            c.TLS.KeyFile,
			InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		},
		compiled: c.subject,
		Body:     Body{Schema: c.Schema},
	}
	if st := c.Stream; st != nil {
		cfg.Stream = &NATSStream{
			Name:            st.Name,
			Subjects:        st.Subjects,
			Storage:         st.Storage,
			DuplicateWindow: st.DuplicateWindow,
			Replicas:        st.Replicas,
		}
	}
	return cfg
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
