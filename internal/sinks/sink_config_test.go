package sinks

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Each sink type's config: its defaults, and Validate naming each key. A
// new key of a sink type is added here and in its *_config.go only.

func TestStdoutConfig(t *testing.T) {
	var c StdoutConfig
	c.SetDefaults(DaemonKeys{})
	if c.Format != FormatJSON {
		t.Errorf("default format got %q, want json", c.Format)
	}
	c.Format = "xml"
	if err := c.Validate(DaemonKeys{}); err == nil || err.Error() != `format: "xml" is not json or text` {
		t.Errorf("Validate got %v, want the format named", err)
	}
}

func TestFileConfig(t *testing.T) {
	var c FileConfig
	c.SetDefaults(DaemonKeys{})
	want := FileConfig{Mode: 0o640, FlushInterval: time.Second, MaxFiles: 5}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if size, bytes := c.QueueDefaults(); size != DefaultQueueSize || bytes != DefaultQueueMaxBytes {
		t.Errorf("queue defaults got %d, %d", size, bytes)
	}
	c.MaxFiles, c.MaxSizeBytes, c.FlushInterval = 0, -1, -time.Second
	got := flattenErr(c.Validate(DaemonKeys{}))
	wantErrs := []string{
		"path: required for a file sink",
		"flush_interval: -1s: must be positive",
		"max_size_bytes: -1: must not be negative",
		"max_files: 0: must be at least 1",
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}

func TestTextValues(t *testing.T) {
	for _, tt := range []struct {
		in   string
		into interface{ UnmarshalText([]byte) error }
		err  string
	}{
		{"0640", new(FileMode), ""},
		{"0999", new(FileMode), `"0999" is not an octal file mode such as "0640"`},
		{"01777", new(FileMode), `"01777" is not an octal file mode such as "0640"`},
		{"block", new(WhenFull), ""},
		{"wait", new(WhenFull), `"wait" is not drop_newest or block`},
		{"exit", new(OnError), ""},
		{"", new(OnError), `"" is not drop, block or exit`},
	} {
		err := tt.into.UnmarshalText([]byte(tt.in))
		if got := errString(err); got != tt.err {
			t.Errorf("%T.UnmarshalText(%q) got %q, want %q", tt.into, tt.in, got, tt.err)
		}
	}
}

func flattenErr(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestOTLPConfig(t *testing.T) {
	var c OTLPConfig
	c.SetDefaults(DaemonKeys{})
	want := OTLPConfig{Protocol: "grpc", Endpoint: "localhost:4317", Compression: "none", Timeout: 10 * time.Second,
		BatchSize: 512, MaxInFlight: 8192, DrainTimeout: 10 * time.Second}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := c.Validate(DaemonKeys{}); err != nil {
		t.Errorf("Validate of the defaults: %v", err)
	}
	h := OTLPConfig{Protocol: "http"}
	h.SetDefaults(DaemonKeys{})
	if h.Endpoint != "http://localhost:4318" {
		t.Errorf("http default endpoint %q", h.Endpoint)
	}
	for _, tt := range []struct {
		protocol, endpoint string
		tls                bool
		target, err        string
	}{
		{"grpc", "collector:4317", false, "collector:4317", ""},
		{"grpc", "https://collector:4317", false, "collector:4317", ""},
		{"grpc", "http://collector:4317", true, "collector:4317", ""},
		{"grpc", "collector", false, "", `"collector" is not host:port or http(s)://host:port`},
		{"grpc", "http://collector:4317/v1/logs", false, "", `"http://collector:4317/v1/logs": a gRPC endpoint has no path`},
		{"http", "http://collector:4318", false, "http://collector:4318/v1/logs", ""},
		{"http", "https://collector/otlp/v1/logs", false, "https://collector/otlp/v1/logs", ""},
		{"http", "collector:4318", false, "", `"collector:4318" is not an http:// or https:// URL`},
	} {
		c := OTLPConfig{Protocol: tt.protocol, Endpoint: tt.endpoint}
		if tt.tls {
			c.TLS.InsecureSkipVerify = true
		}
		target, tlsOn, err := c.target()
		if errString(err) != tt.err || target != tt.target {
			t.Errorf("%s %s: target %q, %v; want %q, %q", tt.protocol, tt.endpoint, target, err, tt.target, tt.err)
		}
		wantTLS := tt.tls || strings.HasPrefix(tt.endpoint, "https:")
		if err == nil && tlsOn != wantTLS {
			t.Errorf("%s %s: tls %v, want %v", tt.protocol, tt.endpoint, tlsOn, wantTLS)
		}
	}
	bad := OTLPConfig{Protocol: "udp", Compression: "zstd", Timeout: -1, BatchSize: 10, MaxInFlight: 5,
		Headers: map[string]string{"bad name": "x"}, TLS: TLSConfig{CertFile: "/c"}}
	wantErrs := []string{
		`protocol: "udp" is not grpc or http`,
		`compression: "zstd" is not none or gzip`,
		"timeout: -1ns: must be positive",
		"max_in_flight: 5: must be at least batch_size (10)",
		`headers: "bad name" is not a header name`,
		"tls.cert_file: cert_file and key_file go together",
		`tls.cert_file: "/c": no such file or directory`,
	}
	if diff := cmp.Diff(wantErrs, flattenErr(bad.Validate(DaemonKeys{}))); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}
