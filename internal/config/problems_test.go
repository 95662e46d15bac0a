package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/config"
)

// problems loads body (and set) with exactly env as the environment and
// returns every problem as "line: key: message" ("" line for values not
// from the file), failing unless Load returned a *config.Error.
func problems(t *testing.T, body string, env []string, set ...string) []string {
	t.Helper()
	path := writeConfig(t, body)
	if env == nil {
		env = []string{}
	}
	_, err := config.Load(config.Options{Path: path, Set: set, DefaultPath: noDefault(t), Environ: env})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load: got %v, want a *config.Error", err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, strings.TrimPrefix(p.String(), path))
	}
	return out
}

// TestBrokenFiles: every problem in a file is reported at once, each with
// its key, the bad value and the line the YAML gives it on; unknown keys and
// type errors do not hide the other problems.
func TestBrokenFiles(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		set  []string
		want []string
	}{
		{
			name: "unknown key beside type errors and invalid values",
			body: `listener:
  gropus: [1]
  groups: [a, 40]
  handshake_timeout: 2
sinks:
  f:
    type: file
    flush_interval: 1
    colour: red
routes:
  - match: "1.1"
    sinks: [f, g]
`,
			want: []string{
				`:2: listener.gropus: unknown key`,
				`:3: listener.groups[0]: "a": want an integer`,
				`:3: listener.groups[1]: group 40 is outside 1..32`,
				`:4: listener.handshake_timeout: 2: want a duration string such as "2s" or "250ms" (a bare number has no unit)`,
				`:6: sinks.f.path: required for a file sink`,
				`:8: sinks.f.flush_interval: 1: want a duration string such as "2s" or "250ms" (a bare number has no unit)`,
				`:9: sinks.f.colour: unknown key for a file sink; its keys: queue_size, queue_max_bytes, when_full, path, mode, flush_interval, max_size_bytes, max_files, on_error`,
				`:12: routes[0].sinks[1]: no sink named "g"`,
			},
		},
		{
			name: "enums, modes and a bad duration string",
			body: `sinks:
  f:
    type: file
    path: /x
    mode: 0640
    on_error: retry
    when_full: wait
  n:
    type: nats
    url: nats://127.0.0.1:4222
    ack_timeout: soon
routes:
  - match: "1.1"
    sinks: [f, n]
`,
			want: []string{
				`:5: sinks.f.mode: 416: want an octal mode string such as "0640" (quote it)`,
				`:6: sinks.f.on_error: "retry" is not drop, block or exit`,
				`:7: sinks.f.when_full: "wait" is not drop_newest or block`,
				`:11: sinks.n.ack_timeout: "soon": want a duration such as "2s" or "250ms"`,
			},
		},
		{
			name: "values from the environment and --set are labelled by source",
			body: minimal,
			env:  []string{"CNBRIDGED_LISTENER_BATCH_SIZE=many", "CNBRIDGED_METRICS_LISTN=:9", "HOME=/root"},
			set:  []string{"listener.handshake_timeout=3", "log.level=loud"},
			want: []string{
				`environment CNBRIDGED_METRICS_LISTN: no such key; variables are CNBRIDGED_<SECTION>_<KEY> for a key section.key, e.g. CNBRIDGED_METRICS_LISTEN`,
				`environment CNBRIDGED_LISTENER_BATCH_SIZE: listener.batch_size: "many": want an integer`,
				`--set listener.handshake_timeout=3: listener.handshake_timeout: "3": want a duration such as "2s" or "250ms"`,
				`--set log.level=loud: log.level: "loud" is not one of debug, info, warn, error`,
			},
		},
		{
			name: "the tap socket's mode",
			body: minimal,
			set:  []string{"tap.mode=0999"},
			want: []string{`--set tap.mode=0999: tap.mode: "0999" is not an octal file mode such as "0640"`},
		},
		{
			name: "where: a typo with its column, enrichment fields without enrichment, ancestors without any",
			body: `sinks:
  out:
    type: stdout
routes:
  - match: "1.1"
    sinks: [out]
    enrich: true
    where: 'proc.event == "exec" && process.exee == "/usr/bin/curl"'
  - match: "1.1"
    sinks: [out]
    where: 'process.exe.endsWith("/cc")'
  - match: "1.1"
    sinks: [out]
    enrich: true
    where: |
      proc.event == "exec" &&
        ancestors.exists(a, a.exe == "/usr/sbin/sshd")
  - match: "1.1"
    sinks: [out]
    where: 'proc.pid'
  - match: "1.1"
    sinks: [out]
    enrich: true
    fold: lifecycle
    where: 'proc.event == "exec"'
`,
			want: []string{
				`:8: routes[0].where: column 32: undefined field 'exee'`,
				`:11: routes[1].where: reads process.exe, which needs enrich: true`,
				`:15: routes[2].where: reads ancestors but the route carries none (ancestors: 0)`,
				`:20: routes[3].where: column 1: the expression's type is int, want bool (true selects the record)`,
				`:25: routes[4].where: reads proc.event, but a fold: lifecycle route's where sees life records, which have no proc (life.execs, life.exit_status…)`,
			},
		},
		{
			name: "rate_limit: each key checked, members that need enrichment; fold",
			body: `sinks:
  out:
    type: stdout
routes:
  - match: "1.1"
    sinks: [out]
    rate_limit:
      per: [process.exe, proc.evnt]
      events_per_second: 0
      burst: 5
  - match: "1.1"
    sinks: [out]
    rate_limit:
      events_per_second: 1
      report_every: 10
      max_key: 3
  - match: "1.1"
    sinks: [out]
    fold: lifecycle
  - match: "1.1"
    sinks: [out]
    enrich: true
    fold: lives
`,
			want: []string{
				`:8: routes[0].rate_limit.per[0]: process.exe needs enrich: true`,
				`:8: routes[0].rate_limit.per[1]: "proc.evnt": no member "evnt" in cnbridged.Proc`,
				`:9: routes[0].rate_limit.events_per_second: 0: want a rate above 0`,
				`:15: routes[1].rate_limit.report_every: 10: want a duration string such as "2s" or "250ms" (a bare number has no unit)`,
				`:16: routes[1].rate_limit.max_key: unknown key`,
				`:19: routes[2].fold: lifecycle needs enrich: true (a life is folded by the process's entity id)`,
				`:23: routes[3].fold: "lives" is not lifecycle`,
			},
		},
		{
			name: "a sink that is not a mapping, a route key misspelt",
			body: `sinks:
  out: stdout
routes:
  - match: "1.1"
    sinkz: [out]
`,
			want: []string{
				`:2: sinks.out: "stdout": want a mapping of keys (type: …)`,
				`:4: routes[0].sinks: no sinks named`,
				`:5: routes[0].sinkz: unknown key`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.body, tt.env, tt.set...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestYAMLSyntaxLine: a syntax error names the line it is on.
func TestYAMLSyntaxLine(t *testing.T) {
	got := problems(t, "log:\n  level: [info\nsinks: {}\n", nil)
	if len(got) != 1 || !strings.Contains(got[0], "line 2") {
		t.Errorf("got %q, want one problem on line 2", got)
	}
}

// TestSetMergesIntoBuiltin: --set without a file changes one key of the
// built-in default and keeps the rest of it.
func TestSetMergesIntoBuiltin(t *testing.T) {
	c, err := config.Load(config.Options{Set: []string{"sinks.stdout.queue_size=10"}, DefaultPath: noDefault(t), Environ: []string{}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.SinkNames(); !cmp.Equal(got, []string{"stdout"}) {
		t.Errorf("sinks got %q, want [stdout]", got)
	}
	if s := c.Sinks["stdout"]; s.QueueSize != 10 || s.Type != "stdout" {
		t.Errorf("sinks.stdout got type %q queue_size %d, want stdout and 10", s.Type, s.QueueSize)
	}
	if len(c.Routes) != 1 || c.Routes[0].Match != "1.1" {
		t.Errorf("routes got %+v, want the built-in 1.1 route", c.Routes)
	}
}

// TestSecretFiles: validation checks what the NATS sink would reject at
// start: missing files, directories, secrets readable by others.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.creds")
	if err := os.WriteFile(open, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := problems(t, `sinks:
  n:
    type: nats
    url: nats://127.0.0.1:4222
    creds_file: `+open+`
    tls:
      ca_file: `+dir+`
      cert_file: `+filepath.Join(dir, "missing.pem")+`
      key_file: `+filepath.Join(dir, "missing.key")+`
routes:
  - match: "1.1"
    sinks: [n]
`, nil)
	want := []string{
		`:5: sinks.n.creds_file: "` + open + `" has mode 0644: a secret must not be readable by group or others; want 0600 or 0400`,
		`:7: sinks.n.tls.ca_file: "` + dir + `" is a directory, not a file`,
		`:8: sinks.n.tls.cert_file: "` + filepath.Join(dir, "missing.pem") + `": no such file or directory`,
		`:9: sinks.n.tls.key_file: "` + filepath.Join(dir, "missing.key") + `": no such file or directory`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
