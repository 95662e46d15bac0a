package sinks

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// OTLPSinkConfig is an otlp sink's own config, as the config file gives
// it: OTLP logs to an OpenTelemetry Collector (or any OTLP receiver).
type OTLPSinkConfig struct {
	Protocol    string            `mapstructure:"protocol"`    // grpc (default), http
	Endpoint    string            `mapstructure:"endpoint"`    // grpc: host:port or http(s)://host:port; http: http(s)://host:port[/path]
	Headers     map[string]string `mapstructure:"headers"`     // sent with every export (authentication)
	Compression string            `mapstructure:"compression"` // none (default), gzip
	TLS         OTLPTLSConfig     `mapstructure:"tls"`
	Timeout     time.Duration     `mapstructure:"timeout"` // per export attempt
	// BatchSize is the most records one export carries; MaxInFlight the
	// most the sink holds without an outcome (being batched, waiting to be
	// exported, exported and not yet answered). Write waits while it
	// holds MaxInFlight, and the sink's queue takes the rest.
	BatchSize    int           `mapstructure:"batch_size"`
	MaxInFlight  int           `mapstructure:"max_in_flight"`
	DrainTimeout time.Duration `mapstructure:"drain_timeout"` // Close waits at most this long for answers
	SchemaConfig `mapstructure:",squash"`
}

// OTLPTLSConfig is an otlp sink's tls section. TLS is used when the
// endpoint's scheme is https or any key here is set.
type OTLPTLSConfig struct {
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// Enabled reports whether any TLS key is set.
func (t OTLPTLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
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
)

// SetDefaults implements TypeConfig.
func (c *OTLPSinkConfig) SetDefaults() {
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
func (c *OTLPSinkConfig) QueueDefaults() (int, int) {
	return DefaultOTLPQueueSize, DefaultOTLPQueueMaxBytes
}

// Validate implements TypeConfig. It checks what NewOTLP would reject:
// the endpoint's form for the protocol, and that TLS files are readable
// (the key not by group or others).
func (c *OTLPSinkConfig) Validate() error {
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
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "cert_file and key_file go together")
	}
	for _, f := range []struct {
		key, path string
		secret    bool
	}{
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
	if err := c.validateWith(true, ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// target returns where exports go: gRPC's host:port, or HTTP's URL (with
// /v1/logs when the endpoint has no path), and whether TLS is on.
func (c *OTLPSinkConfig) target() (string, bool, error) {
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

// OTLPConfig returns what NewOTLP takes for the sink name on host.
func (c *OTLPSinkConfig) OTLPConfig(name, host string) OTLPConfig {
	target, tlsOn, _ := c.target()
	return OTLPConfig{
		Name:         name,
		Host:         host,
		Protocol:     c.Protocol,
		Target:       target,
		TLS:          tlsOn,
		TLSFiles:     NATSTLS{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, InsecureSkipVerify: c.TLS.InsecureSkipVerify},
		Headers:      c.Headers,
		Gzip:         c.Compression == "gzip",
		Timeout:      c.Timeout,
		BatchSize:    c.BatchSize,
		MaxInFlight:  c.MaxInFlight,
		DrainTimeout: c.DrainTimeout,
		Body:         Body{Schema: c.Schema},
	}
}
