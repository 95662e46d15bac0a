package config_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTwoSinksOneFile: two file sinks on one path are refused by
// validation (the daemon would refuse the second by its lock).
func TestTwoSinksOneFile(t *testing.T) {
	got := problems(t, `sinks:
  a: {type: file, path: /var/log/x.jsonl}
  b: {type: file, path: /var/log//x.jsonl}
routes:
  - {match: "1.1", sinks: [a, b]}
`, nil)
	want := []string{`:3: sinks.b.path: "/var/log//x.jsonl" is also sinks.a's file: two writers would interleave their lines (each file sink locks its file)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
