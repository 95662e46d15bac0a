package deploy

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
	"github.com/cnbridged/cnbridged/internal/otlptest"
)

// dashboard is the Grafana dashboard shipped for cnbridged.
const dashboard = "grafana/cnbridged.json"

// runOTLP starts the Collector's OTLP receiver (gRPC) on loopback, taking
// everything, and returns its endpoint.
func runOTLP(t *testing.T) string {
	t.Helper()
	r, err := otlptest.Start(otlptest.GRPC, "", func(context.Context, plog.Logs) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r.Endpoint()
}

// runNATS starts an embedded NATS server on loopback and returns its URL.
func runNATS(t *testing.T) string {
	t.Helper()
	return natstest.Run(t).ClientURL()
}

// metricsConfig uses every kind of component that exports metrics: a file
// sink, a NATS sink, an OTLP sink, enrichment, a route with a selection
// stage (where, rate_limit, fold) and a connector request subject.
const metricsConfig = `
host: metrics-test
metrics: {listen: "{metrics}"}
tap: {socket: "{dir}/tap.sock"}
sinks:
  archive: {type: file, path: "{dir}/events.jsonl"}
  bus: {type: nats, url: "{nats}", subject: "deploytest.{host}.{idx}.{val}"}
  otel: {type: otlp, endpoint: "{otlp}"}
routes:
  - match: "1.1"
    sinks: [archive, bus, otel]
    enrich: true
  - match: "1.1"
    sinks: [archive]
    enrich: true
    where: 'has(record.life)'
    rate_limit: {events_per_second: 100}
    fold: lifecycle
requests:
  - subject: deploytest.request.1.1
    id: "1.1"
    group: 1
    sink: bus
`

// TestRunningDaemonMetrics starts the daemon and scrapes it once: every
// metric README documents is there from the start (at zero for every known
// label value), and every series the Grafana dashboard queries exists.
func TestRunningDaemonMetrics(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	cfg := strings.NewReplacer("{dir}", t.TempDir(), "{nats}", runNATS(t), "{otlp}", runOTLP(t)).Replace(metricsConfig)
	fams := scrape(t, startDaemon(t, cfg))

	t.Run("README metrics present", func(t *testing.T) {
		readme, err := os.ReadFile("../README.md")
		if err != nil {
			t.Fatalf("read README: %v", err)
		}
		documented := documentedMetrics(string(readme))
		if len(documented) < 20 {
			t.Fatalf("found %d metric names in README.md, want the whole metrics table", len(documented))
		}
		for _, name := range documented {
			if _, ok := fams[name]; !ok {
				t.Errorf("README documents %s, but a freshly started daemon does not export it", name)
			}
		}
	})

	t.Run("known label values at zero", func(t *testing.T) {
		want := map[string][]map[string]string{}
		for _, sink := range []string{"archive", "bus"} {
			for _, r := range []string{"sent", "dropped", "failed"} {
				want["cnbridged_sink_messages_total"] = append(want["cnbridged_sink_messages_total"], map[string]string{"sink": sink, "result": r})
			}
			for _, r := range []string{"queue_full", "outage_buffer_full", "write_error", "shutdown"} {
				want["cnbridged_sink_dropped_total"] = append(want["cnbridged_sink_dropped_total"], map[string]string{"sink": sink, "reason": r})
			}
			for _, r := range []string{"write_error", "rejected", "duplicate_id", "unconfirmed", "abandoned"} {
				want["cnbridged_sink_failed_total"] = append(want["cnbridged_sink_failed_total"], map[string]string{"sink": sink, "reason": r})
			}
		}
		for _, r := range []string{"short_nlmsghdr", "bad_nlmsg_len", "short_cn_msg", "cn_len_overflow", "short_proc_event", "truncated", "not_connector"} {
			want["cnbridged_decode_errors_total"] = append(want["cnbridged_decode_errors_total"], map[string]string{"reason": r})
		}
		for _, r := range []string{"malformed", "untrusted_sender", "unrouted"} {
			want["cnbridged_messages_rejected_total"] = append(want["cnbridged_messages_rejected_total"], map[string]string{"reason": r})
		}
		for _, r := range []string{"table", "read", "gone", "error", "backlog", "skipped"} {
			want["cnbridged_enrich_total"] = append(want["cnbridged_enrich_total"], map[string]string{"result": r})
		}
		for _, r := range []string{"received", "partial", "late", "gone", "error"} {
			want["cnbridged_enrich_capture_total"] = append(want["cnbridged_enrich_capture_total"], map[string]string{"result": r})
		}
		for _, r := range []string{"replied", "timeout", "too_large", "rate_limited", "id_not_allowed", "busy"} {
			want["cnbridged_requests_total"] = append(want["cnbridged_requests_total"], map[string]string{"subject": "deploytest.request.1.1", "result": r})
		}
		for _, w := range []string{"listening", "not_listening"} {
			want["cnbridged_messages_lost_total"] = append(want["cnbridged_messages_lost_total"], map[string]string{"idx": "other", "val": "other", "when": w})
		}
		want["cnbridged_nats_connected"] = []map[string]string{{"sink": "bus"}}
		for _, r := range []string{"ok", "partial", "retry", "failed"} {
			want["cnbridged_otlp_exports_total"] = append(want["cnbridged_otlp_exports_total"], map[string]string{"sink": "otel", "result": r})
		}
		for name, sets := range want {
			for _, labels := range sets {
				if !hasSeries(fams[name], labels) {
					t.Errorf("no series %s with labels %v at start", name, labels)
				}
			}
		}
	})

	t.Run("build_info", func(t *testing.T) {
		f := fams["cnbridged_build_info"]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("cnbridged_build_info: %v, want one series", f)
		}
		m := f.GetMetric()[0]
		labels := labelMap(m)
		if labels["version"] != testVersion || labels["commit"] == "" || !strings.HasPrefix(labels["goversion"], "go") {
			t.Errorf("cnbridged_build_info labels = %v, want version %q, a commit and goversion go…", labels, testVersion)
		}
		if v := m.GetGauge().GetValue(); v != 1 {
			t.Errorf("cnbridged_build_info = %v, want 1", v)
		}
	})

	t.Run("dashboard series exist", func(t *testing.T) {
		exprs := dashboardExprs(t)
		if len(exprs) < 10 {
			t.Fatalf("found %d queries in %s, want the whole dashboard", len(exprs), dashboard)
		}
		for _, e := range exprs {
			for _, sel := range selectors(e) {
				f, ok := fams[sel.name]
				if !ok {
					t.Errorf("%s queries %s (in %q), which the daemon does not export", dashboard, sel.name, e)
					continue
				}
				if !hasSeries(f, sel.labels) {
					t.Errorf("%s queries %s with labels %v (in %q): no such series", dashboard, sel.name, sel.labels, e)
				}
			}
		}
	})
}

// metricNameRE matches a metric name opening a code span and ending it (or
// its label list): `cnbridged_x` or `cnbridged_x{…}`, not a pattern such as
// `cnbridged_sink_*`.
var metricNameRE = regexp.MustCompile("`(cnbridged_[a-z0-9_]*[a-z0-9])[`{]")

// documentedMetrics returns every cnbridged_* name README.md gives in code
// spans, sorted and without repeats.
func documentedMetrics(readme string) []string {
	var names []string
	for _, m := range metricNameRE.FindAllStringSubmatch(readme, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// hasSeries reports whether f has a series carrying every label of want.
func hasSeries(f *dto.MetricFamily, want map[string]string) bool {
	for _, m := range f.GetMetric() {
		got := labelMap(m)
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// dashboardExprs returns every PromQL expression in the dashboard: panel
// targets (rows' panels included) and templating queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	var exprs []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if key == "expr" || key == "definition" {
				exprs = append(exprs, v)
			}
		}
	}
	walk(doc, "")
	return exprs
}

// selector is a metric name in a query with its equality matchers on
// literal values (=~, != and $variables are not checked: matcherRE needs
// `name="` with no other operator and no $).
type selector struct {
	name   string
	labels map[string]string
}

var (
	selectorRE = regexp.MustCompile(`\b((?:cnbridged|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)\s*=\s*"([^"$]*)"`)
)

// selectors finds the series a PromQL expression reads. A histogram's
// _bucket, _sum and _count name their family.
func selectors(expr string) []selector {
	var out []selector
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && strings.HasPrefix(name, "cnbridged_") {
				name = base
			}
		}
		s := selector{name: name, labels: map[string]string{}}
		for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[lm[1]] = lm[2]
		}
		out = append(out, s)
	}
	return out
}
