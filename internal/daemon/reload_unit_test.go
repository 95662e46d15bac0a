package daemon

import (
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/requests"
)

// TestSplitKey: reload failure lines are logged with their key, whether
// they come from Load (with a source before the key) or from Apply.
func TestSplitKey(t *testing.T) {
	for _, tt := range []struct{ line, key, problem string }{
		{`host: "a" → "b": changing it needs a restart`, "host", `"a" → "b": changing it needs a restart`},
		{`/etc/c.yaml:12: sinks.n.creds_file: "/x": no such file or directory`, "sinks.n.creds_file", `"/x": no such file or directory`},
		{`--set log.level=loud: log.level: "loud" is not one of debug, info, warn, error`, "", `--set log.level=loud: log.level: "loud" is not one of debug, info, warn, error`},
		{"environment CNBRIDGED_X: no such key", "", "environment CNBRIDGED_X: no such key"},
		{"listener.groups: join group 5: operation not permitted", "listener.groups", "join group 5: operation not permitted"},
	} {
		key, problem := splitKey(tt.line)
		if key != tt.key || problem != tt.problem {
			t.Errorf("splitKey(%q) got %q, %q; want %q, %q", tt.line, key, problem, tt.key, tt.problem)
		}
	}
}

// TestRequestsUnchanged: a reload may not change connector requests, the
// NATS sink they use or the host; other sinks may change.
func TestRequestsUnchanged(t *testing.T) {
	load := func(extra string) *config.Config {
		t.Helper()
		c, err := config.Load(config.Options{Environ: []string{}, DefaultPath: t.TempDir() + "/absent", Set: append([]string{
			"sinks.bus.type=nats", "sinks.bus.url=nats://127.0.0.1:4222",
		}, strings.Fields(extra)...)})
		if err != nil {
			t.Fatal(err)
		}
		c.Requests = []requests.Config{{Subject: "r", ID: "1.1", Group: 1, Sink: "bus"}}
		return c
	}
	old := load("")
	if err := requestsUnchanged(old, load("sinks.stdout.queue_size=10")); err != nil {
		t.Errorf("another sink changed: %v, want nil", err)
	}
	if err := requestsUnchanged(old, load("sinks.bus.max_in_flight=10")); err == nil || !strings.HasPrefix(err.Error(), "sinks.bus: ") {
		t.Errorf("the requests' sink changed: %v, want an error naming sinks.bus", err)
	}
	changed := load("")
	changed.Requests[0].Group = 2
	if err := refused(old, changed); err == nil || err.Error() != "requests: changing it needs a restart" {
		t.Errorf("requests changed: %v, want an error naming requests", err)
	}
	if err := refused(load("host=a"), load("host=b")); err == nil || err.Error() != `host: "a" → "b": changing it needs a restart` {
		t.Errorf("host changed: %v, want an error naming host and both values", err)
	}
	if err := refused(old, load("sinks.bus.max_in_flight=10")); err != nil {
		t.Errorf("a sink changed: %v, want nil from refused", err)
	}
}

// TestRestartKeys: every key a reload cannot apply is named when it
// changes (state_dir and listener.handshake_timeout were not: a reload
// neither applied nor mentioned them), and nothing when nothing changed.
func TestRestartKeys(t *testing.T) {
	var a config.Config
	if got := restartKeys(&a, &a); len(got) != 0 {
		t.Errorf("unchanged config: %v, want none", got)
	}
	b := a
	b.StateDir = "/var/lib/other"
	b.Listener.HandshakeTimeout = 5
	b.ProcessTable.ExecReaders = 2
	b.Query.MaxRows = 5
	got := strings.Join(restartKeys(&a, &b), " ")
	if want := "listener.handshake_timeout query process_table state_dir"; got != want {
		t.Errorf("restartKeys = %q, want %q", got, want)
	}
}
