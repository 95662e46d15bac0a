package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/requests"
	"github.com/cnbridged/cnbridged/internal/schema"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// ignoreCompiled leaves out the parsed forms Validate keeps beside the
// keys (compiled templates, patterns, event sets).
var ignoreCompiled = cmp.Options{
	cmpopts.IgnoreFields(config.Route{}, "Pattern", "EventSet", "HasEvents"),
	cmpopts.IgnoreFields(requests.Config{}, "CnID", "NATSSubject"),
	cmpopts.IgnoreFields(config.Listener{}, "Trusted", "ProcEventSet"),
}

// writeConfig writes body to a temporary YAML file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noDefault is a DefaultPath that does not exist, so that tests never read
// /etc/cnbridged/cnbridged.yaml.
func noDefault(t *testing.T) string {
	return filepath.Join(t.TempDir(), "absent.yaml")
}

// load loads body with the given --set overrides and fails the test on error.
func load(t *testing.T, body string, set ...string) *config.Config {
	t.Helper()
	c, err := config.Load(config.Options{Path: writeConfig(t, body), Set: set, DefaultPath: noDefault(t)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// loadErr loads body and returns the error, failing the test when there is none.
func loadErr(t *testing.T, body string, set ...string) error {
	t.Helper()
	c, err := config.Load(config.Options{Path: writeConfig(t, body), Set: set, DefaultPath: noDefault(t)})
	if err == nil {
		t.Fatalf("Load succeeded (%+v), want an error", c)
	}
	return err
}

// checkErr fails unless err's text contains every one of want.
func checkErr(t *testing.T, err error, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

const minimal = `
sinks:
  out:
    type: stdout
routes:
  - match: "1.1"
    sinks: [out]
`

func TestBuiltinDefault(t *testing.T) {
	c, err := config.Load(config.Options{DefaultPath: noDefault(t)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Source != "" {
		t.Errorf("Source = %q, want empty for the built-in default", c.Source)
	}
	if diff := cmp.Diff([]int{1}, c.Listener.Groups); diff != "" {
		t.Errorf("listener.groups (-want +got):\n%s", diff)
	}
	if got, want := c.SinkNames(), []string{"stdout"}; !cmp.Equal(got, want) {
		t.Fatalf("sinks = %q, want %q", got, want)
	}
	if got, want := c.Sinks["stdout"].Type, "stdout"; got != want {
		t.Errorf("sinks.stdout.type = %q, want %q", got, want)
	}
	wantRoutes := []config.Route{{Match: "1.1", Sinks: []string{"stdout"}}}
	if diff := cmp.Diff(wantRoutes, c.Routes, ignoreCompiled); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if !c.Routes[0].LossMarkersOn() {
		t.Error("built-in route has loss markers off, want on")
	}
	host, _ := os.Hostname()
	if c.Host != host {
		t.Errorf("host = %q, want %q", c.Host, host)
	}
	if got, want := c.Metrics.Listen, "127.0.0.1:9464"; got != want {
		t.Errorf("metrics.listen = %q, want %q", got, want)
	}
}

func TestDefaultPathRead(t *testing.T) {
	path := writeConfig(t, minimal)
	c, err := config.Load(config.Options{DefaultPath: path})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Source != path {
		t.Errorf("Source = %q, want %q", c.Source, path)
	}
	if got, want := c.SinkNames(), []string{"out"}; !cmp.Equal(got, want) {
		t.Errorf("sinks = %q, want %q", got, want)
	}
}

func TestMissingExplicitPath(t *testing.T) {
	_, err := config.Load(config.Options{Path: noDefault(t)})
	if err == nil {
		t.Fatal("Load of a missing --config file succeeded, want an error")
	}
	checkErr(t, err, "absent.yaml")
}

func TestExampleConfigs(t *testing.T) {
	paths, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no configs/*.yaml found")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := config.Load(config.Options{Path: path, DefaultPath: noDefault(t)})
			var ce *config.Error
			if errors.As(err, &ce) {
				// An example may name secret and CA files of the host it
				// is meant for: those, and only those, may be missing here.
				for _, p := range ce.Problems {
					if !strings.HasSuffix(p.Key, "_file") || !strings.HasSuffix(p.Msg, "no such file or directory") {
						t.Errorf("Load: %v", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Sinks) == 0 || len(c.Routes) == 0 {
				t.Errorf("%d sinks, %d routes; want some of each", len(c.Sinks), len(c.Routes))
			}
		})
	}
}

func TestMainExampleConfig(t *testing.T) {
	c, err := config.Load(config.Options{Path: "../../configs/cnbridged.yaml", DefaultPath: noDefault(t)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	q := sinks.QueueConfig{QueueSize: 65536, QueueMaxBytes: 64 << 20, WhenFull: sinks.DropNewest}
	native := sinks.SchemaConfig{Schema: schema.Native}
	want := map[string]*config.Sink{
		"console": {Type: "stdout", QueueConfig: q, Settings: &sinks.StdoutConfig{Format: "json", SchemaConfig: native}},
		"archive": {Type: "file", QueueConfig: q, Settings: &sinks.FileConfig{
			Path: "/var/log/cnbridged/events.jsonl", Mode: 0o640, FlushInterval: time.Second,
			MaxFiles: 5, OnError: sinks.OnErrorDrop, SchemaConfig: native,
		}},
	}
	if diff := cmp.Diff(want, c.Sinks, ignoreCompiled); diff != "" {
		t.Errorf("sinks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"console", "archive"}, c.Routes[0].Sinks); diff != "" {
		t.Errorf("routes[0].sinks (-want +got):\n%s", diff)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "top level",
			body: minimal + "bogus: 1\n",
			want: []string{"bogus"},
		},
		{
			name: "nested section",
			body: minimal + "listener:\n  groups: [1]\n  recieve_buffer_bytes: 1\n",
			want: []string{"listener", "recieve_buffer_bytes"},
		},
		{
			name: "inside a sink",
			body: `
sinks:
  out:
    type: stdout
    colour: red
routes:
  - match: "1.1"
    sinks: [out]
`,
			want: []string{"sinks.out.colour: unknown key for a stdout sink"},
		},
		{
			name: "inside a route",
			body: minimal + "    event: [exec]\n",
			want: []string{"routes[0]", "event"},
		},
		{
			name: "several at once",
			body: `
bogus: 1
log:
  colour: red
sinks:
  out:
    type: stdout
    colour: red
routes:
  - match: "1.1"
    sinks: [out]
`,
			want: []string{":2: bogus: unknown key", ":4: log.colour: unknown key", ":8: sinks.out.colour: unknown key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, loadErr(t, tt.body), tt.want...)
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	err := loadErr(t, `
log:
  level: loud
listener:
  groups: [1, 40, 1]
  batch_size: 0
sinks:
  x:
    type: file
    when_full: wait
  y:
    type: stdout
    path: /tmp/y
routes:
  - match: "1"
    events: [exec, boom]
    sinks: [x, nope]
  - match: "*"
    sinks: []
`)
	want := []string{
		`log.level: "loud"`,
		"listener.groups[1]: group 40 is outside 1..32",
		"listener.groups[2]: group 1 listed twice",
		"listener.batch_size: 0",
		"sinks.x.path: required",
		"sinks.x.when_full",
		"sinks.y.path: applies only to sinks of type file",
		`routes[0].match: id pattern "1"`,
		`routes[0].events: unknown process event "boom"`,
		`routes[0].sinks[1]: no sink named "nope"`,
		"routes[1].sinks: no sinks named",
	}
	checkErr(t, err, want...)
	if got := strings.Count(err.Error(), "\n") + 1; got != len(want) {
		t.Errorf("error has %d lines, want %d:\n%v", got, len(want), err)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		set  []string
		want []string
	}{
		{"no sinks", "routes:\n  - match: \"1.1\"\n    sinks: [a]\n", nil,
			[]string{"sinks: no sinks defined", `routes[0].sinks[0]: no sink named "a"`}},
		{"no routes", "sinks:\n  a:\n    type: stdout\n", nil, []string{"routes: no routes"}},
		{"sink without type", "sinks:\n  a:\n    queue_size: 5\nroutes:\n  - match: \"1.1\"\n    sinks: [a]\n", nil,
			[]string{"sinks.a.type: required"}},
		{"unknown sink type", "sinks:\n  a:\n    type: kafka\nroutes:\n  - match: \"1.1\"\n    sinks: [a]\n", nil,
			[]string{`sinks.a.type: "kafka" is not file, nats, otlp or stdout`}},
		{"bad sink name", "sinks:\n  _a:\n    type: stdout\nroutes:\n  - match: \"1.1\"\n    sinks: [_a]\n", nil,
			[]string{"sinks._a: sink name must match"}},
		{"receive buffer", minimal, []string{"listener.receive_buffer_bytes=1024"},
			[]string{"listener.receive_buffer_bytes: 1024 is outside"}},
		{"handshake timeout", minimal, []string{"listener.handshake_timeout=0s"},
			[]string{"listener.handshake_timeout: must be positive"}},
		{"proc events", minimal, []string{"listener.proc_events=exec,bogus"},
			[]string{`listener.proc_events: unknown process event "bogus"`}},
		{"userspace senders", minimal, []string{"listener.userspace_senders=5.5,x"},
			[]string{`listener.userspace_senders[1]: id pattern "x"`}},
		{"reorder window", minimal, []string{"ledger.reorder_window=65"},
			[]string{"ledger.reorder_window: 65 is outside 0..64"}},
		{"max streams", minimal, []string{"ledger.max_streams=0"},
			[]string{"ledger.max_streams: must be at least 1"}},
		{"metrics no port", minimal, []string{"metrics.listen=localhost"},
			[]string{`metrics.listen: "localhost": want host:port`}},
		{"metrics bad port", minimal, []string{"metrics.listen=:http"},
			[]string{`metrics.listen: ":http": bad port`}},
		{"log format", minimal, []string{"log.format=xml"}, []string{`log.format: "xml"`}},
		{"empty host", minimal, []string{"host="}, []string{"host: empty"}},
		{"queue size", minimal, []string{"sinks.out.queue_size=-1"}, []string{"--set sinks.out.queue_size=-1: sinks.out.queue_size: -1: must be at least 1"}},
		{"queue max bytes", minimal, []string{"sinks.out.queue_max_bytes=100"}, []string{"sinks.out.queue_max_bytes: 100: must be at least 65536"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, loadErr(t, tt.body, tt.set...), tt.want...)
		})
	}
}

func TestNullSink(t *testing.T) {
	// viper drops a key whose value is null, so the sink is missing.
	err := loadErr(t, `
sinks:
  out:
    type: stdout
  n:
routes:
  - match: "1.1"
    sinks: [out, n]
`)
	checkErr(t, err, `routes[0].sinks[1]: no sink named "n"`)
}

// TestValidateNilSink calls Validate on a config built in code, as a caller
// other than Load may: a nil sink is an error, not a panic.
func TestValidateNilSink(t *testing.T) {
	c, err := config.Load(config.Options{DefaultPath: noDefault(t)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c.Sinks["n"] = nil
	c.Requests = []requests.Config{{Subject: "req.x", ID: "5.5", Group: 5, Sink: "n", Timeout: time.Second, Format: "raw", Burst: 1}}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded, want an error")
	}
	checkErr(t, err, "sinks.n: empty sink", `requests[0].sink: "n" is not a nats sink`)
}

func TestValidMetricsListen(t *testing.T) {
	for _, addr := range []string{"", ":9464", "127.0.0.1:9464", "[::1]:9464", "localhost:0"} {
		t.Run(addr, func(t *testing.T) {
			c := load(t, minimal, "metrics.listen="+addr)
			if c.Metrics.Listen != addr {
				t.Errorf("metrics.listen = %q, want %q", c.Metrics.Listen, addr)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	const file = `
listener:
  receive_buffer_bytes: 1048576
sinks:
  f:
    type: file
    path: /from/file
routes:
  - match: "1.1"
    sinks: [f]
`
	tests := []struct {
		name  string
		env   map[string]string
		check func(*config.Config) (got, want any)
	}{
		{
			name: "receive buffer",
			env:  map[string]string{"CNBRIDGED_LISTENER_RECEIVE_BUFFER_BYTES": "33554432"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.ReceiveBufferBytes, 33554432
			},
		},
		{
			name: "metrics listen",
			env:  map[string]string{"CNBRIDGED_METRICS_LISTEN": "0.0.0.0:9999"},
			check: func(c *config.Config) (any, any) {
				return c.Metrics.Listen, "0.0.0.0:9999"
			},
		},
		{
			name: "metrics listen empty disables",
			env:  map[string]string{"CNBRIDGED_METRICS_LISTEN": ""},
			check: func(c *config.Config) (any, any) {
				return c.Metrics.Listen, ""
			},
		},
		{
			name: "duration",
			env:  map[string]string{"CNBRIDGED_LISTENER_HANDSHAKE_TIMEOUT": "250ms"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.HandshakeTimeout, 250 * time.Millisecond
			},
		},
		{
			name: "int list",
			env:  map[string]string{"CNBRIDGED_LISTENER_GROUPS": "1, 3"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.Groups, []int{1, 3}
			},
		},
		{
			name: "string list",
			env:  map[string]string{"CNBRIDGED_LISTENER_PROC_EVENTS": "exec,exit"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.ProcEvents, []string{"exec", "exit"}
			},
		},
		{
			name: "key of a sink in the file",
			env:  map[string]string{"CNBRIDGED_SINKS_F_PATH": "/from/env"},
			check: func(c *config.Config) (any, any) {
				return c.Sinks["f"].File().Path, "/from/env"
			},
		},
		{
			name: "host",
			env:  map[string]string{"CNBRIDGED_HOST": "web-42"},
			check: func(c *config.Config) (any, any) {
				return c.Host, "web-42"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, want := tt.check(load(t, file))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvOverrideInvalid(t *testing.T) {
	t.Setenv("CNBRIDGED_LISTENER_RECEIVE_BUFFER_BYTES", "lots")
	checkErr(t, loadErr(t, minimal), "receive_buffer_bytes")
}

func TestSetOverrides(t *testing.T) {
	tests := []struct {
		name  string
		set   []string
		check func(*config.Config) (got, want any)
	}{
		{
			name: "int",
			set:  []string{"listener.receive_buffer_bytes=33554432"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.ReceiveBufferBytes, 33554432
			},
		},
		{
			name: "int list",
			set:  []string{"listener.groups=1,3"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.Groups, []int{1, 3}
			},
		},
		{
			name: "string list",
			set:  []string{"listener.userspace_senders=32343.*,7.7"},
			check: func(c *config.Config) (any, any) {
				return c.Listener.UserspaceSenders, []string{"32343.*", "7.7"}
			},
		},
		{
			name: "upper-case key",
			set:  []string{"Log.Level=debug"},
			check: func(c *config.Config) (any, any) {
				return c.Log.Level, "debug"
			},
		},
		{
			name: "value with =",
			set:  []string{"host=a=b"},
			check: func(c *config.Config) (any, any) {
				return c.Host, "a=b"
			},
		},
		{
			name: "sink key",
			set:  []string{"sinks.out.queue_size=10", "sinks.out.when_full=block"},
			check: func(c *config.Config) (any, any) {
				return [2]any{c.Sinks["out"].QueueSize, c.Sinks["out"].WhenFull}, [2]any{10, sinks.Block}
			},
		},
		{
			name: "last wins",
			set:  []string{"log.level=debug", "log.level=warn"},
			check: func(c *config.Config) (any, any) {
				return c.Log.Level, "warn"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.check(load(t, minimal, tt.set...))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetBeatsEnvAndFile(t *testing.T) {
	t.Setenv("CNBRIDGED_LOG_LEVEL", "warn")
	c := load(t, minimal+"log:\n  level: error\n", "log.level=debug")
	if got, want := c.Log.Level, "debug"; got != want {
		t.Errorf("log.level = %q, want %q", got, want)
	}
}

func TestEnvBeatsFile(t *testing.T) {
	t.Setenv("CNBRIDGED_LOG_LEVEL", "warn")
	c := load(t, minimal+"log:\n  level: error\n")
	if got, want := c.Log.Level, "warn"; got != want {
		t.Errorf("log.level = %q, want %q", got, want)
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want []string
	}{
		{"no equals", []string{"log.level"}, []string{`--set "log.level": want key=value`}},
		{"empty key", []string{"=x"}, []string{`--set "=x"`}},
		{"both reported", []string{"a", "b"}, []string{`--set "a"`, `--set "b"`}},
		{"unknown key", []string{"listener.bogus=1"}, []string{"bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, loadErr(t, minimal, tt.set...), tt.want...)
		})
	}
}

func TestSinkKeyMisuse(t *testing.T) {
	tests := []struct {
		name string
		sink string // the sink's body, indented by 4
		want string
	}{
		{"path on stdout", "type: stdout\n    path: /x", "sinks.s.path: applies only to sinks of type file"},
		{"mode on stdout", "type: stdout\n    mode: \"0600\"", "sinks.s.mode: applies only to sinks of type file"},
		{"flush interval on stdout", "type: stdout\n    flush_interval: 1s", "sinks.s.flush_interval: applies only to sinks of type file"},
		{"max files on stdout", "type: stdout\n    max_files: 3", "sinks.s.max_files: applies only to sinks of type file"},
		{"on_error on nats", "type: nats\n    url: nats://x\n    on_error: drop", "sinks.s.on_error: applies only to sinks of type file"},
		{"url on file", "type: file\n    path: /x\n    url: nats://x", "sinks.s.url: applies only to sinks of type nats"},
		{"subject on stdout", "type: stdout\n    subject: a.b", "sinks.s.subject: applies only to sinks of type nats"},
		{"raw format on stdout", "type: stdout\n    format: raw", `sinks.s.format: "raw" is not json or text`},
		{"format on file", "type: file\n    path: /x\n    format: text", "sinks.s.format: applies only to sinks of type nats or stdout"},
		{"jetstream on file", "type: file\n    path: /x\n    jetstream: true", "sinks.s.jetstream: applies only to sinks of type nats"},
		{"password on stdout", "type: stdout\n    password: pw", "sinks.s.password: applies only to sinks of type nats"},
		{"tls on stdout", "type: stdout\n    tls:\n      ca_file: /ca", "sinks.s.tls: applies only to sinks of type nats"},
		{"stream on stdout", "type: stdout\n    stream:\n      name: X", "sinks.s.stream: applies only to sinks of type nats"},
		{"file mode not octal", "type: file\n    path: /x\n    mode: \"0999\"", `sinks.s.mode: "0999" is not an octal file mode`},
		{"file mode too wide", "type: file\n    path: /x\n    mode: \"01777\"", `sinks.s.mode: "01777"`},
		{"file mode unquoted", "type: file\n    path: /x\n    mode: 0640", `sinks.s.mode: 416: want an octal mode string such as "0640" (quote it)`},
		{"file on_error", "type: file\n    path: /x\n    on_error: retry", `sinks.s.on_error: "retry"`},
		{"file max files", "type: file\n    path: /x\n    max_files: -1", "sinks.s.max_files: -1: must be at least 1"},
		{"nats without url", "type: nats", "sinks.s.url: required for a nats sink"},
		{"nats format", "type: nats\n    url: nats://x\n    format: xml", `sinks.s.format: "xml" is not json or raw`},
		{"nats subject field", "type: nats\n    url: nats://x\n    subject: cn.{pid}", "sinks.s.subject: \"cn.{pid}\": unknown field {pid}"},
		{"nats subject unclosed", "type: nats\n    url: nats://x\n    subject: cn.{host", "unclosed {"},
		{"nats subject dots", "type: nats\n    url: nats://x\n    subject: cn..x", "is not a valid subject"},
		{"nats subject wildcard", "type: nats\n    url: nats://x\n    subject: cn.*", "wildcard * in a publish subject"},
		{"nats subject tail wildcard", "type: nats\n    url: nats://x\n    subject: cn.>", "wildcard > in a publish subject"},
		{"nats two auths", "type: nats\n    url: nats://x\n    token: t\n    creds_file: /c", "sinks.s.user: set only one of"},
		{"nats user without password", "type: nats\n    url: nats://x\n    user: u", "sinks.s.password: user and password go together"},
		{"nats cert without key", "type: nats\n    url: nats://x\n    tls:\n      cert_file: /c", "sinks.s.tls.cert_file"},
		{"nats stream without jetstream", "type: nats\n    url: nats://x\n    stream:\n      name: X", "sinks.s.stream: needs jetstream: true"},
		{"nats stream without name", "type: nats\n    url: nats://x\n    jetstream: true\n    stream:\n      subjects: [a]", "sinks.s.stream.name: required"},
		{"nats stream storage", "type: nats\n    url: nats://x\n    jetstream: true\n    stream:\n      name: X\n      storage: tape", `sinks.s.stream.storage: "tape"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "sinks:\n  s:\n    " + tt.sink + "\nroutes:\n  - match: \"1.1\"\n    sinks: [s]\n"
			checkErr(t, loadErr(t, body), tt.want)
		})
	}
}

func TestSinkDefaults(t *testing.T) {
	c := load(t, `
sinks:
  out:
    type: stdout
  f:
    type: file
    path: /var/log/x.jsonl
  n:
    type: nats
    url: nats://127.0.0.1:4222
  js:
    type: nats
    url: nats://127.0.0.1:4222
    jetstream: true
    stream:
      name: CN
      subjects: ["cn.>"]
routes:
  - match: "*"
    sinks: [out, f, n, js]
`)
	q := sinks.QueueConfig{QueueSize: sinks.DefaultQueueSize, QueueMaxBytes: sinks.DefaultQueueMaxBytes}
	nq := sinks.QueueConfig{QueueSize: sinks.DefaultNATSQueueSize, QueueMaxBytes: sinks.DefaultNATSQueueMaxBytes}
	// The keys given, with the type's defaults (sinks tests them): a key
	// added to a sink type changes nothing here.
	daemon := sinks.DaemonKeys{Host: c.Host, ShutdownTimeout: c.ShutdownTimeout}
	nats := sinks.NATSConfig{URL: "nats://127.0.0.1:4222"}
	nats.SetDefaults(daemon)
	js := sinks.NATSConfig{URL: "nats://127.0.0.1:4222", JetStream: true, Stream: &sinks.NATSStream{Name: "CN", Subjects: []string{"cn.>"}}}
	js.SetDefaults(daemon)
	if js.DrainTimeout != c.ShutdownTimeout || js.Stream.Storage != "file" {
		t.Errorf("nats defaults: drain_timeout %s (want shutdown_timeout %s), stream.storage %q (want file)", js.DrainTimeout, c.ShutdownTimeout, js.Stream.Storage)
	}
	want := map[string]*config.Sink{
		"out": {Type: "stdout", QueueConfig: q, Settings: &sinks.StdoutConfig{Format: "json"}},
		"f": {Type: "file", QueueConfig: q, Settings: &sinks.FileConfig{
			Path: "/var/log/x.jsonl", Mode: 0o640, FlushInterval: time.Second, MaxFiles: 5, OnError: sinks.OnErrorDrop,
		}},
		"n":  {Type: "nats", QueueConfig: nq, Settings: &nats},
		"js": {Type: "nats", QueueConfig: nq, Settings: &js},
	}
	if diff := cmp.Diff(want, c.Sinks, ignoreCompiled); diff != "" {
		t.Errorf("sinks (-want +got):\n%s", diff)
	}
	if got, want := c.SinkNames(), []string{"f", "js", "n", "out"}; !cmp.Equal(got, want) {
		t.Errorf("SinkNames() = %q, want %q", got, want)
	}
}

func TestFixedDefaults(t *testing.T) {
	c := load(t, minimal)
	host, _ := os.Hostname()
	type fixed struct {
		Host     string
		Log      config.Log
		Listener config.Listener
		Ledger   config.Ledger
		Metrics  config.Metrics
	}
	want := fixed{
		Host: host,
		Log:  config.Log{Level: "info", Format: "auto"},
		Listener: config.Listener{
			Groups:             []int{1},
			ReceiveBufferBytes: config.DefaultReceiveBufferBytes,
			BatchSize:          config.DefaultBatchSize,
			UserspaceSenders:   []string{},
			HandshakeTimeout:   2 * time.Second,
			ReaderPriority:     config.DefaultReaderPriority,
			ProcEvents:         []string{"all"},
		},
		Ledger:  config.Ledger{ReorderWindow: 0, MaxStreams: 65536},
		Metrics: config.Metrics{Listen: "127.0.0.1:9464"},
	}
	got := fixed{c.Host, c.Log, c.Listener, c.Ledger, c.Metrics}
	if diff := cmp.Diff(want, got, ignoreCompiled); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDurations(t *testing.T) {
	c := load(t, `
shutdown_timeout: 3h
listener:
  handshake_timeout: 250ms
sinks:
  f:
    type: file
    path: /x
    flush_interval: 1m30s
  n:
    type: nats
    url: nats://x
    ack_timeout: 1.5s
    drain_timeout: 2h
routes:
  - match: "1.1"
    sinks: [f, n]
requests:
  - subject: req.x
    id: "5.5"
    group: 5
    sink: n
    timeout: 750ms
`)
	got := []time.Duration{
		c.Listener.HandshakeTimeout, c.Sinks["f"].File().FlushInterval,
		c.Sinks["n"].NATS().AckTimeout, c.Sinks["n"].NATS().DrainTimeout, c.Requests[0].Timeout, c.ShutdownTimeout,
	}
	want := []time.Duration{
		250 * time.Millisecond, 90 * time.Second,
		1500 * time.Millisecond, 2 * time.Hour, 750 * time.Millisecond, 3 * time.Hour,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("durations (-want +got):\n%s", diff)
	}
}

func TestBadDuration(t *testing.T) {
	checkErr(t, loadErr(t, minimal, "listener.handshake_timeout=soon"), "handshake_timeout")
}

func TestRoutes(t *testing.T) {
	c := load(t, `
sinks:
  a:
    type: stdout
  b:
    type: stdout
routes:
  - match: "1.1"
    events: [exec, nonzero_exit, ack]
    sinks: [a]
    loss_markers: false
    enrich: true
  - match: "*"
    sinks: [a, b]
`)
	off := false
	want := []config.Route{
		{Match: "1.1", Events: []string{"exec", "nonzero_exit", "ack"}, Sinks: []string{"a"}, LossMarkers: &off, Enrich: true},
		{Match: "*", Sinks: []string{"a", "b"}},
	}
	if diff := cmp.Diff(want, c.Routes, ignoreCompiled); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if c.Routes[0].LossMarkersOn() {
		t.Error("routes[0].LossMarkersOn() = true, want false")
	}
	if !c.Routes[1].LossMarkersOn() {
		t.Error("routes[1].LossMarkersOn() = false, want true (the default)")
	}
}

func TestRequests(t *testing.T) {
	const sinks = `
sinks:
  n:
    type: nats
    url: nats://x
  out:
    type: stdout
routes:
  - match: "1.1"
    sinks: [out]
`
	c := load(t, sinks+`
requests:
  - subject: req.x
    id: "5.5"
    group: 5
    sink: n
`)
	want := []requests.Config{{
		Subject: "req.x", ID: "5.5", Group: 5, Sink: "n",
		Timeout: 2 * time.Second, Format: "raw", RateLimit: 10, Burst: 10,
	}}
	if diff := cmp.Diff(want, c.Requests, ignoreCompiled); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	err := loadErr(t, sinks+`
requests:
  - id: "5.*"
    group: 33
    sink: out
    format: xml
    burst: -1
  - subject: req.y
    id: "x"
    group: 1
    sink: missing
    timeout: -1s
`)
	checkErr(t, err,
		"requests[0].subject: empty",
		`requests[0].id: "5.*": want an exact idx.val`,
		"requests[0].group: 33 is outside 1..32",
		`requests[0].sink: "out" is not a nats sink`,
		`requests[0].format: "xml"`,
		"requests[0].rate_limit",
		`requests[1].id: "x"`,
		"requests[1].timeout: must be positive",
		`requests[1].sink: "missing" is not a nats sink`,
	)
}

func TestTLSEnabled(t *testing.T) {
	tests := []struct {
		tls  sinks.TLSConfig
		want bool
	}{
		{sinks.TLSConfig{}, false},
		{sinks.TLSConfig{CAFile: "/ca"}, true},
		{sinks.TLSConfig{CertFile: "/c"}, true},
		{sinks.TLSConfig{KeyFile: "/k"}, true},
		{sinks.TLSConfig{InsecureSkipVerify: true}, true},
	}
	for _, tt := range tests {
		if got := tt.tls.Enabled(); got != tt.want {
			t.Errorf("%+v.Enabled() = %v, want %v", tt.tls, got, tt.want)
		}
	}
}

func TestMalformedYAML(t *testing.T) {
	path := writeConfig(t, "sinks: [\n")
	_, err := config.Load(config.Options{Path: path, DefaultPath: noDefault(t)})
	if err == nil {
		t.Fatal("Load of malformed YAML succeeded, want an error")
	}
	checkErr(t, err, path)
}

// TestShutdownTimeout: shutdown_timeout bounds every sink's drain, so a
// drain_timeout longer than it is an error naming both keys; an unset
// drain_timeout follows shutdown_timeout.
func TestShutdownTimeout(t *testing.T) {
	const nats = `
sinks:
  n:
    type: nats
    url: nats://127.0.0.1:4222
%s
routes:
  - match: "1.1"
    sinks: [n]
`
	err := loadErr(t, fmt.Sprintf(nats, "    drain_timeout: 25s"), "shutdown_timeout=10s")
	checkErr(t, err, "sinks.n.drain_timeout: 25s is longer than shutdown_timeout (10s)")
	checkErr(t, loadErr(t, minimal, "shutdown_timeout=0s"), "shutdown_timeout: must be positive")

	c := load(t, fmt.Sprintf(nats, ""), "shutdown_timeout=4s")
	if got, want := c.Sinks["n"].NATS().DrainTimeout, 4*time.Second; got != want {
		t.Errorf("default drain_timeout got %s, want %s (shutdown_timeout)", got, want)
	}
	if got, want := load(t, minimal).ShutdownTimeout, config.DefaultShutdownTimeout; got != want {
		t.Errorf("default shutdown_timeout got %s, want %s", got, want)
	}
}

// TestStdoutFormat: the built-in default writes text with enrichment to a
// terminal and JSON lines elsewhere; --format json|text decides for every
// stdout sink, config file or not.
func TestStdoutFormat(t *testing.T) {
	file := writeConfig(t, "sinks:\n  out: {type: stdout, format: text}\n  f: {type: file, path: /x}\nroutes:\n  - {match: \"1.1\", sinks: [out, f]}\n")
	tests := []struct {
		name       string
		opts       config.Options
		wantFormat string
		wantEnrich bool
	}{
		{"builtin on a terminal", config.Options{Terminal: true}, "text", true},
		{"builtin piped", config.Options{}, "json", false},
		{"builtin on a terminal with --format json", config.Options{Terminal: true, Format: "json"}, "json", false},
		{"builtin piped with --format text", config.Options{Format: "text"}, "text", true},
		{"file as written", config.Options{Path: file, Terminal: true}, "text", false},
		{"file with --format json", config.Options{Path: file, Format: "json"}, "json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.DefaultPath = noDefault(t)
			c, err := config.Load(tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var out *config.Sink
			for _, s := range c.Sinks {
				if s.Type == "stdout" {
					out = s
				}
			}
			if out == nil {
				t.Fatalf("no stdout sink in %v", c.Sinks)
			}
			format := out.Settings.(*sinks.StdoutConfig).Format
			if format != tt.wantFormat || c.Routes[0].Enrich != tt.wantEnrich {
				t.Errorf("stdout format %q, enrich %v; want %q, %v", format, c.Routes[0].Enrich, tt.wantFormat, tt.wantEnrich)
			}
		})
	}
	if _, err := config.Load(config.Options{Format: "yaml", DefaultPath: noDefault(t)}); err == nil || !strings.Contains(err.Error(), `--format "yaml": want json or text`) {
		t.Errorf("Load(--format yaml) error = %v, want one naming --format and what it accepts", err)
	}
}
