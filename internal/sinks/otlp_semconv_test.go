package sinks

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

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
