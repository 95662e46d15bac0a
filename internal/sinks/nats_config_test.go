package sinks

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestNATSConfig: the NATS sink's defaults, and Validate naming each key.
// A new key is added here and in nats_config.go only.
func TestNATSConfig(t *testing.T) {
	c := NATSConfig{Stream: &NATSStream{}}
	c.SetDefaults(DaemonKeys{ShutdownTimeout: 7 * time.Second})
	want := NATSConfig{
		Subject: DefaultSubject, Format: "json", MaxInFlight: DefaultMaxInFlight, AckTimeout: DefaultAckTimeout,
		ReconnectBufferBytes: DefaultReconnectBufferSize, DrainTimeout: 7 * time.Second,
		Stream:        &NATSStream{Storage: "file", DuplicateWindow: DefaultDuplicateWindow, Replicas: 1},
		ReconnectWait: defaultReconnectWait, MaxReconnectWait: defaultMaxReconnectWait,
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(NATSConfig{})); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	var alone NATSConfig
	alone.SetDefaults(DaemonKeys{})
	if alone.DrainTimeout != DefaultNATSDrainTimeout {
		t.Errorf("drain_timeout without a shutdown_timeout got %s, want %s", alone.DrainTimeout, DefaultNATSDrainTimeout)
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
	c.DrainTimeout = 9 * time.Second
	c.MaxReconnectWait = time.Millisecond
	got := flattenErr(c.Validate(DaemonKeys{Host: "h", ShutdownTimeout: 7 * time.Second}))
	wantErrs := []string{
		"url: required for a nats sink",
		`subject: "cn.{pid}.>": unknown field {pid}; known: host, idx, val, event, cpu, container`,
		`format: "xml" is not json or raw`,
		"drain_timeout: 9s is longer than shutdown_timeout (7s), which bounds every sink's drain: lower it or raise shutdown_timeout",
		"max_reconnect_wait: 1ms: must be at least 250ms",
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
