package schema_test

import (
	"encoding/json"
	"testing"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/schema"
)

// FuzzEncode: any line the field model parses encodes, in both schemas,
// to one valid JSON object, without a panic.
func FuzzEncode(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := fields.Parse(line)
		if err != nil {
			return
		}
		for name, doc := range map[string][]byte{
			"ecs":  schema.AppendECS(nil, r),
			"ocsf": schema.AppendOCSF(nil, r, schema.Product{Version: "v"}),
		} {
			var o map[string]any
			if err := json.Unmarshal(doc, &o); err != nil {
				t.Fatalf("%s: not a JSON object: %v: %s", name, err, doc)
			}
		}
	})
}
