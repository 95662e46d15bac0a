package sinks

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/schema"
	"github.com/cnbridged/cnbridged/internal/schema/schematest"
)

// validateSemconv checks each attribute of m against the registry.
func validateSemconv(t *testing.T, m pcommon.Map) []string {
	t.Helper()
	return schematest.ValidateSemconv(m.AsRaw())
}

// TestSemconvValidatorRejects: the validator catches an unknown name and
// a wrong type.
func TestSemconvValidatorRejects(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("process.pid", "1")
	m.PutInt("process.pidd", 1)
	m.PutInt("process.owner", 0)
	got := validateSemconv(t, m)
	want := []string{
		"process.owner: int value, the registry says string",
		"process.pid: string value, the registry says int",
		"process.pidd: not a semantic-convention attribute",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

// TestOTLPResourceSemconv: the resource's attributes are the registry's.
func TestOTLPResourceSemconv(t *testing.T) {
	s := &OTLP{cfg: OTLPConfig{Host: "h", BatchSize: 1, Body: Body{Product: schema.Product{Version: "1"}}}}
	b := s.newBatch()
	for _, e := range validateSemconv(t, b.logs.ResourceLogs().At(0).Resource().Attributes()) {
		t.Error(e)
	}
}

// TestOTLPAttributesLife: a life record's attributes are its process's,
// with the exit code and times of the life, under the registry's names.
func TestOTLPAttributesLife(t *testing.T) {
	rec, err := fields.ParseStrict([]byte(`{"time":"2026-11-30T16:08:41.000000000Z","host":"web-1","type":"life","process":{"entity_id":"b:4717:1","pid":4717,"tgid":4717,"ppid":4716,"exe":"/usr/bin/sleep","cmdline":["sleep","0.2"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/"},"life":{"start":"2026-11-30T16:08:40.790000000Z","end":"2026-11-30T16:08:41.000000000Z","duration_ns":210000789,"forked":true,"events":4,"exit_code":9,"signal":"SIGKILL","core_dumped":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := pcommon.NewMap()
	otlpAttributes(m, rec)
	want := map[string]any{"process.pid": int64(4717), "process.parent_pid": int64(4716), "process.exit.code": int64(137),
		"process.exit.time": "2026-11-30T16:08:41.000000000Z", "process.creation.time": "2026-11-30T16:08:40.790000000Z",
		"process.executable.path": "/usr/bin/sleep"}
	if diff := cmpMap(want, m.AsRaw()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, e := range validateSemconv(t, m) {
		t.Error(e)
	}
	if name := otlpEventName(rec); name != "cnbridged.life" {
		t.Errorf("event name %q", name)
	}
}
