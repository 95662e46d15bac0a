package schema_test

import (
	"encoding/json"
	"testing"

	"github.com/cnbridged/cnbridged/internal/schema"
	"github.com/cnbridged/cnbridged/internal/schema/schematest"
)

// TestECSConformsToSchema validates the document of every sample against
// ECS 9.4.0's ecs_flat.yml (and the documented custom field set).
func TestECSConformsToSchema(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			doc := schema.AppendECS(nil, sample(t, s.name))
			if !json.Valid(doc) {
				t.Fatalf("not JSON: %s", doc)
			}
			for _, e := range schematest.ValidateECS(doc) {
				t.Error(e)
			}
			if t.Failed() {
				t.Logf("document: %s", doc)
			}
		})
	}
}

// TestOCSFConformsToSchema validates the event of every sample against
// OCSF 1.8.0: the dictionary, Process Activity and the Base Event, and
// the objects they use.
func TestOCSFConformsToSchema(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			doc := schema.AppendOCSF(nil, sample(t, s.name), schema.Product{Version: "1.2.3"})
			if !json.Valid(doc) {
				t.Fatalf("not JSON: %s", doc)
			}
			errs, deprecated := schematest.ValidateOCSF(doc)
			for _, e := range errs {
				t.Error(e)
			}
			for _, d := range deprecated {
				if d != "process.lineage" {
					t.Errorf("%s: deprecated", d)
				}
			}
			if t.Failed() {
				t.Logf("event: %s", doc)
			}
		})
	}
}
