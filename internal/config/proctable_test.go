package config_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProcessTableKeys(t *testing.T) {
	c := load(t, minimal)
	if c.ProcessTable.MaxEntries != 65536 || c.ProcessTable.ExecReaders != 1 || c.ProcessTable.CaptureBudget != time.Millisecond || len(c.EnrichRedact) != 0 {
		t.Errorf("defaults: process_table %+v, enrich_redact %v; want 65536 and none", c.ProcessTable, c.EnrichRedact)
	}
	c = load(t, `
process_table:
  max_entries: 1000
  exec_readers: 2
  capture_budget: 250us
enrich_redact: ['--password=(\S+)']
sinks:
  a:
    type: stdout
routes:
  - match: "1.1"
    enrich: true
    ancestors: 3
    threads: false
    sinks: [a]
  - match: "1.1"
    sinks: [a]
`)
	type route struct {
		Enrich    bool
		Ancestors int
		Threads   bool
	}
	var got []route
	for _, r := range c.Routes {
		got = append(got, route{r.Enrich, r.Ancestors, r.ThreadsOn()})
	}
	if diff := cmp.Diff([]route{{true, 3, false}, {false, 0, true}}, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if c.ProcessTable.MaxEntries != 1000 || c.ProcessTable.ExecReaders != 2 || c.ProcessTable.CaptureBudget != 250*time.Microsecond || !cmp.Equal(c.EnrichRedact, []string{`--password=(\S+)`}) {
		t.Errorf("got process_table %+v, enrich_redact %v", c.ProcessTable, c.EnrichRedact)
	}
}

func TestProcessTableErrors(t *testing.T) {
	route := func(extra string) string {
		return "sinks:\n  a:\n    type: stdout\nroutes:\n  - match: \"1.1\"\n    sinks: [a]\n" + extra
	}
	tests := []struct {
		name string
		body string
		set  []string
		want []string
	}{
		{"max entries", minimal, []string{"process_table.max_entries=0"}, []string{"process_table.max_entries: must be at least 1"}},
		{"exec readers zero", minimal, []string{"process_table.exec_readers=0"}, []string{"process_table.exec_readers: 0 is outside 1..64"}},
		{"exec readers too many", minimal, []string{"process_table.exec_readers=65"}, []string{"process_table.exec_readers: 65 is outside 1..64"}},
		{"capture budget negative", minimal, []string{"process_table.capture_budget=-1ms"}, []string{"process_table.capture_budget: -1ms is outside 0s..100ms"}},
		{"capture budget too long", minimal, []string{"process_table.capture_budget=1s"}, []string{"process_table.capture_budget: 1s is outside 0s..100ms"}},
		{"redact not RE2", route("enrich_redact: ['(?<=x)(y)']\n"), nil, []string{`enrich_redact[0]: "(?<=x)(y)" is not an RE2 pattern`}},
		{"redact without group", route("enrich_redact: ['secret']\n"), nil, []string{`enrich_redact[0]: "secret" has no capture group`}},
		{"ancestors without enrich", route("    ancestors: 2\n"), nil, []string{"routes[0].ancestors: needs enrich: true"}},
		{"ancestors too many", route("    enrich: true\n    ancestors: 65\n"), nil, []string{"routes[0].ancestors: 65 is outside 0..64"}},
		{"threads off a proc route", "sinks:\n  a:\n    type: stdout\nroutes:\n  - match: \"5.*\"\n    threads: false\n    sinks: [a]\n", nil,
			[]string{`routes[0].threads: applies to process events only, and match "5.*" never matches 1.1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, loadErr(t, tt.body, tt.set...), tt.want...)
		})
	}
}
