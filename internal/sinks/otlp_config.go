package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/schema"
)

// OTLPConfig is an otlp sink's configuration (OTLP logs to an
// OpenTelemetry Collector, or any OTLP receiver): the keys of its section
// of the config file, decoded, defaulted and validated here, and what
// NewOTLP takes. A new key is a field here, its default in SetDefaults and
// its check in Validate.
type OTLPConfig struct {
	Protocol    string            `mapstructure:"protocol"`    // grpc (default), http
	Endpoint    string            `mapstructure:"endpoint"`    // grpc: host:port or http(s)://host:port; http: http(s)://host:port[/path]
	Headers     map[string]string `mapstructure:"headers"`     // sent with every export (authentication)
	Compression string            `mapstructure:"compression"` // none (default), gzip
	TLS         TLSConfig         `mapstructure:"tls"`
	Timeout     time.Duration     `mapstructure:"timeout"` // per export attempt
	// BatchSize is the most records one export carries; MaxInFlight the
	// most the sink holds without an outcome (being batched, waiting to be
	// exported, exported and not yet answered). Write waits while it
	// holds MaxInFlight, and the sink's queue takes the rest.
	BatchSize    int           `mapstructure:"batch_size"`
	MaxInFlight  int           `mapstructure:"max_in_flight"`
	DrainTimeout time.Duration `mapstructure:"drain_timeout"` // Close waits at most this long for answers
	// SchemaConfig: the document each LogRecord's body holds.
	SchemaConfig `mapstructure:",squash"`

	// Not keys of the config file: set by whoever builds the sink (New
	// from its Env; tests).

	Name string `mapstructure:"-"` // the sink's name: metrics label
	Host string `mapstructure:"-"` // host.name of the resource
	// Product is this build, named in schema documents and as the
	// resource's service.version.
	Product schema.Product `mapstructure:"-"`
	// RetryWait is the pause after a failed attempt; it doubles up to
	// MaxRetryWait, with up to 25 % jitter, unless the receiver asks for
	// a longer one (RetryInfo, Retry-After). Zero: 250 ms and 5 s.
	RetryWait    time.Duration `mapstructure:"-"`
	MaxRetryWait time.Duration `mapstructure:"-"`
	// Context ends Write's waits: a Write blocked on a full sink counts
	// its record as dropped (reason shutdown) once it ends. Nil: never.
	Context context.Context `mapstructure:"-"`
}

// OTLP protocols and compressions.
const (
	OTLPGRPC = "grpc"
	OTLPHTTP = "http"

	otlpProtocolAccepted    = "grpc or http"
	otlpCompressionAccepted = "none or gzip"
)

// OTLP sink defaults: the Collector's default ports; a batch the size the
// Collector's batch processor sends by default is larger (8192), but a
// smaller one is retried and counted in smaller steps.
const (
	DefaultOTLPGRPCEndpoint  = "localhost:4317"
	DefaultOTLPHTTPEndpoint  = "http://localhost:4318"
	DefaultOTLPTimeout       = 10 * time.Second
	DefaultOTLPBatchSize     = 512
	DefaultOTLPMaxInFlight   = 8192
	DefaultOTLPDrainTimeout  = 10 * time.Second
	DefaultOTLPQueueSize     = DefaultNATSQueueSize
	DefaultOTLPQueueMaxBytes = DefaultNATSQueueMaxBytes
	otlpHTTPLogsPath         = "/v1/logs"
	defaultOTLPRetryWait     = 250 * time.Millisecond
	defaultOTLPMaxRetryWait  = 5 * time.Second
)

// SetDefaults implements TypeConfig.
func (c *OTLPConfig) SetDefaults(DaemonKeys) {
	if c.Protocol == "" {
		c.Protocol = OTLPGRPC
	}
	if c.Endpoint == "" {
		if c.Protocol == OTLPHTTP {
			c.Endpoint = DefaultOTLPHTTPEndpoint
		} else {
			c.Endpoint = DefaultOTLPGRPCEndpoint
		}
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultOTLPTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultOTLPBatchSize
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultOTLPMaxInFlight
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultOTLPDrainTimeout
	}
}

// QueueDefaults implements TypeConfig: the NATS sink's, which hold a
// 5 s outage at 10 000 records/s.
func (c *OTLPConfig) QueueDefaults() (int, int) {
	return DefaultOTLPQueueSize, DefaultOTLPQueueMaxBytes
}

// Validate implements TypeConfig. It checks what NewOTLP would reject:
// the endpoint's form for the protocol, and that TLS files are readable
// (the key not by group or others).
func (c *OTLPConfig) Validate(DaemonKeys) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	switch c.Protocol {
	case OTLPGRPC, OTLPHTTP:
		if _, _, err := c.target(); err != nil {
			bad("endpoint", "%v", err)
		}
	default:
		bad("protocol", "%q is not %s", c.Protocol, otlpProtocolAccepted)
	}
	if c.Compression != "none" && c.Compression != "gzip" {
		bad("compression", "%q is not %s", c.Compression, otlpCompressionAccepted)
	}
	if c.Timeout <= 0 {
		bad("timeout", "%s: must be positive", c.Timeout)
	}
	if c.BatchSize < 1 {
		bad("batch_size", "%d: must be at least 1", c.BatchSize)
	}
	if c.MaxInFlight < c.BatchSize {
		bad("max_in_flight", "%d: must be at least batch_size (%d)", c.MaxInFlight, c.BatchSize)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout", "%s: must not be negative", c.DrainTimeout)
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			bad("headers", "%q is not a header name", k)
		}
	}
	if err := c.TLS.pairErr(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkFiles(c.TLS.files())...)
	if err := c.validateWith(true, ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// target returns where exports go: gRPC's host:port, or HTTP's URL (with
// /v1/logs when the endpoint has no path), and whether TLS is on.
func (c *OTLPConfig) target() (string, bool, error) {
	e := c.Endpoint
	tlsOn := c.TLS.Enabled()
	if c.Protocol == OTLPGRPC {
		if u, err := url.Parse(e); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			if u.Path != "" && u.Path != "/" {
				return "", false, fmt.Errorf("%q: a gRPC endpoint has no path", e)
			}
			e, tlsOn = u.Host, tlsOn || u.Scheme == "https"
		}
		if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			return "", false, fmt.Errorf("%q is not host:port or http(s)://host:port", c.Endpoint)
		}
		return e, tlsOn, nil
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, fmt.Errorf("%q is not an http:// or https:// URL", e)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = otlpHTTPLogsPath
	}
	return u.String(), tlsOn || u.Scheme == "https", nil
}

// New implements TypeConfig.
func (c *OTLPConfig) New(env Env) (Sink, error) {
	cfg := *c
	cfg.Name, cfg.Host, cfg.Context, cfg.Product = env.Name, env.Host, env.Context, env.Product
	return NewOTLP(cfg, env.Encoder, env.Counters, env.OTLPMetrics, env.Log)
}
