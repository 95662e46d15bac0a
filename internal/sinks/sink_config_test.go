package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Each sink type's config: its defaults, and Validate naming each key. A
// new key of a sink type is added here and in its *_config.go only.

func TestStdoutConfig(t *testing.T) {
	var c StdoutConfig
	c.SetDefaults()
	if c.Format != FormatJSON {
		t.Errorf("default format got %q, want json", c.Format)
	}
	c.Format = "xml"
	if err := c.Validate(); err == nil || err.Error() != `format: "xml" is not json or text` {
		t.Errorf("Validate got %v, want the format named", err)
	}
}

func TestFileSinkConfig(t *testing.T) {
	var c FileSinkConfig
	c.SetDefaults()
	want := FileSinkConfig{Mode: 0o640, FlushInterval: time.Second, MaxFiles: 5}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if size, bytes := c.QueueDefaults(); size != DefaultQueueSize || bytes != DefaultQueueMaxBytes {
		t.Errorf("queue defaults got %d, %d", size, bytes)
	}
	c.MaxFiles, c.MaxSizeBytes, c.FlushInterval = 0, -1, -time.Second
	got := flattenErr(c.Validate())
	wantErrs := []string{
		"path: required for a file sink",
		"flush_interval: -1s: must be positive",
		"max_size_bytes: -1: must not be negative",
		"max_files: 0: must be at least 1",
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
	c = FileSinkConfig{Path: "/x", Mode: 0o600, OnError: OnErrorExit}
	if fc := c.FileConfig(); fc.Path != "/x" || fc.Mode != 0o600 || fc.OnError != OnErrorExit {
		t.Errorf("FileConfig() got %+v", fc)
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

func TestNATSSinkConfig(t *testing.T) {
	c := NATSSinkConfig{Stream: &NATSStreamConfig{}}
	c.SetDefaults()
	want := NATSSinkConfig{
		Subject: DefaultSubject, Format: "json", MaxInFlight: DefaultMaxInFlight, AckTimeout: DefaultAckTimeout,
		ReconnectBufferBytes: DefaultReconnectBufferSize, DrainTimeout: DefaultNATSDrainTimeout,
		Stream: &NATSStreamConfig{Storage: "file", DuplicateWindow: DefaultDuplicateWindow, Replicas: 1},
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(NATSSinkConfig{})); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	dir := t.TempDir()
	open := filepath.Join(dir, "open.creds")
	if err := os.WriteFile(open, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Subject = "cn.{pid}.>"
	c.Format = "xml"
	c.User = "u"
	c.CredsFile = open
	c.TLS.CertFile = filepath.Join(dir, "absent.pem")
	got := flattenErr(c.Validate())
	wantErrs := []string{
		"url: required for a nats sink",
		`subject: "cn.{pid}.>": unknown field {pid}; known: host, idx, val, event, cpu, container`,
		`format: "xml" is not json or raw`,
		"user: set only one of user/password, token, nkey_seed_file, creds_file",
		"password: user and password go together",
		"tls.cert_file: cert_file and key_file go together",
		"stream: needs jetstream: true",
		"stream.name: required",
		`creds_file: "` + open + `" has mode 0644: a secret must not be readable by group or others; want 0600 or 0400`,
		`tls.cert_file: "` + c.TLS.CertFile + `": no such file or directory`,
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}

// TestNATSResolve: the subject is compiled once, for the host, and handed
// to NewNATS through NATSConfig.
func TestNATSResolve(t *testing.T) {
	c := NATSSinkConfig{URL: "nats://127.0.0.1:4222"}
	c.SetDefaults()
	if err := c.Resolve("web.1"); err != nil {
		t.Fatal(err)
	}
	nc := c.NATSConfig("bus", "web.1")
	if nc.compiled == nil || nc.Name != "bus" || nc.Host != "web.1" || nc.Subject != DefaultSubject {
		t.Errorf("NATSConfig got %+v", nc)
	}
	var lits []string
	for _, p := range nc.compiled.parts {
		lits = append(lits, p.lit)
	}
	if got := strings.Join(lits, "|"); !strings.Contains(got, "cn.web_1.") {
		t.Errorf("compiled literals %q, want the host as one token (cn.web_1.)", got)
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

func TestOTLPSinkConfig(t *testing.T) {
	var c OTLPSinkConfig
	c.SetDefaults()
	want := OTLPSinkConfig{Protocol: "grpc", Endpoint: "localhost:4317", Compression: "none", Timeout: 10 * time.Second,
		BatchSize: 512, MaxInFlight: 8192, DrainTimeout: 10 * time.Second}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of the defaults: %v", err)
	}
	h := OTLPSinkConfig{Protocol: "http"}
	h.SetDefaults()
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
		c := OTLPSinkConfig{Protocol: tt.protocol, Endpoint: tt.endpoint}
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
	bad := OTLPSinkConfig{Protocol: "udp", Compression: "zstd", Timeout: -1, BatchSize: 10, MaxInFlight: 5,
		Headers: map[string]string{"bad name": "x"}, TLS: OTLPTLSConfig{CertFile: "/c"}}
	wantErrs := []string{
		`protocol: "udp" is not grpc or http`,
		`compression: "zstd" is not none or gzip`,
		"timeout: -1ns: must be positive",
		"max_in_flight: 5: must be at least batch_size (10)",
		`headers: "bad name" is not a header name`,
		"tls.cert_file: cert_file and key_file go together",
		`tls.cert_file: "/c": no such file or directory`,
	}
	if diff := cmp.Diff(wantErrs, flattenErr(bad.Validate())); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}
