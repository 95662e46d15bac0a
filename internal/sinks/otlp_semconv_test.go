package sinks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.yaml.in/yaml/v3"

	"github.com/cnbridged/cnbridged/internal/schema"
)

// semconvDir holds the semantic conventions' registry files the
// attributes are held to (source: internal/schema/testdata/README.md).
const semconvDir = "../schema/testdata/semconv-1.44.0"

var semconvTypes = sync.OnceValues(func() (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(semconvDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("semantic conventions in %s: %v", semconvDir, err)
	}
	types := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Groups []struct {
				Attributes []struct {
					ID   string    `yaml:"id"`
					Type yaml.Node `yaml:"type"`
				} `yaml:"attributes"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, g := range doc.Groups {
			for _, a := range g.Attributes {
				t := a.Type.Value
				if a.Type.Kind == yaml.MappingNode {
					t = "string" // an enum's members are strings
				}
				types[a.ID] = t
			}
		}
	}
	return types, nil
})

// validateSemconv checks each attribute of m against the registry: the
// name is defined and the value of its type.
func validateSemconv(t *testing.T, m pcommon.Map) []string {
	t.Helper()
	types, err := semconvTypes()
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	m.Range(func(k string, v pcommon.Value) bool {
		want, ok := types[k]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: not a semantic-convention attribute", k))
			return true
		}
		got := ""
		switch v.Type() {
		case pcommon.ValueTypeStr:
			got = "string"
		case pcommon.ValueTypeInt:
			got = "int"
		case pcommon.ValueTypeBool:
			got = "boolean"
		case pcommon.ValueTypeDouble:
			got = "double"
		case pcommon.ValueTypeSlice:
			got = "string[]"
			for i := 0; i < v.Slice().Len(); i++ {
				if v.Slice().At(i).Type() != pcommon.ValueTypeStr {
					got = "mixed[]"
				}
			}
		}
		if got != want && !(want == "template[string]" && got == "string") {
			errs = append(errs, fmt.Sprintf("%s: %s value, the registry says %s", k, got, want))
		}
		return true
	})
	sort.Strings(errs)
	return errs
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
