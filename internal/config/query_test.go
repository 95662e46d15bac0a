package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/query"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// TestQueryConfig: the query section is off by default, takes a NATS
// sink's connection keys with the same checks (files, secrets, auth given
// twice) and nothing else of a sink's, and is validated whole.
func TestQueryConfig(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "q.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		set     []string
		env     []string
		wantErr string
	}{
		{"defaults: off", nil, nil, ""},
		{"on", []string{"query.nats.url=nats://hub:4222"}, nil, ""},
		{"from the environment", nil, []string{"CNBRIDGED_QUERY_NATS_URL=nats://hub:4222", "CNBRIDGED_QUERY_MAX_ROWS=50"}, ""},
		{"a secret readable by others", []string{"query.nats.url=nats://hub:4222", "query.nats.creds_file=" + creds}, nil,
			"query.nats.creds_file: \"" + creds + "\" has mode 0644: a secret must not be readable by group or others"},
		{"a missing file", []string{"query.nats.url=nats://hub:4222", "query.nats.tls.ca_file=/nonexistent/ca.pem"}, nil,
			"query.nats.tls.ca_file: \"/nonexistent/ca.pem\": no such file or directory"},
		{"two kinds of auth", []string{"query.nats.url=nats://hub:4222", "query.nats.token=t", "query.nats.user=u", "query.nats.password=p"}, nil,
			"query.nats.user: set only one of user/password, token, nkey_seed_file, creds_file"},
		{"credentials without a url", []string{"query.nats.token=t"}, nil, "query.nats.url: required when any other nats key is set"},
		{"a sink's key", []string{"query.nats.subject=x"}, nil, "query.nats.subject"},
		{"max_rows", []string{"query.max_rows=0"}, nil, "query.max_rows: 0 is outside 1..100000"},
		{"max_per_second", []string{"query.max_per_second=0"}, nil, "query.max_per_second: 0: must be at least 1"},
		{"ttl", []string{"query.inventory.ttl=15s"}, nil, "query.inventory.ttl: 15s is less than twice inventory.interval (10s)"},
		{"bucket", []string{"query.inventory.bucket=a.b"}, nil, `query.inventory.bucket: "a.b": want letters, digits, - and _ only`},
		{"no heartbeat", []string{"query.inventory.bucket=", "query.inventory.ttl=1s"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Options{DefaultPath: "/nonexistent/cnbridged.yaml", Set: tt.set, Environ: tt.env})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load = %v (config %+v), want an error containing %q", err, c, tt.wantErr)
			}
		})
	}
	c, err := Load(Options{DefaultPath: "/nonexistent/cnbridged.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	want := query.Config{MaxRows: 1000, MaxPerSecond: 20, Inventory: query.Inventory{Bucket: "cnbridged_hosts", Interval: query.DefaultInterval, TTL: query.DefaultTTL}}
	if c.Query != want || c.Query.Enabled() {
		t.Errorf("defaults: got %+v, want %+v, off", c.Query, want)
	}
	c, err = Load(Options{DefaultPath: "/nonexistent/cnbridged.yaml", Environ: []string{"CNBRIDGED_QUERY_NATS_URL=nats://hub:4222", "CNBRIDGED_QUERY_MAX_ROWS=50"}})
	if err != nil || c.Query.NATS != (sinks.NATSConnection{URL: "nats://hub:4222"}) || c.Query.MaxRows != 50 {
		t.Errorf("from the environment: %+v (%v)", c.Query, err)
	}
}
