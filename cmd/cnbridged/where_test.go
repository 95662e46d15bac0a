package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWhereInvalidExits78: validate, run as the daemon binary, refuses a
// route whose where does not compile with exit 78, naming the file, the
// line, the key and the column; check reports the same and fails.
func TestWhereInvalidExits78(t *testing.T) {
	t.Parallel()
	bin := daemonBinary(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	body := "sinks:\n  out:\n    type: stdout\nroutes:\n  - match: \"1.1\"\n    sinks: [out]\n    enrich: true\n" +
		"    where: 'proc.event == \"exec\" && process.exee.endsWith(\"/curl\")'\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	want := path + ":8: routes[0].where: column 32: undefined field 'exee'"
	for _, cmd := range []string{"validate", "check"} {
		out, err := exec.Command(bin, cmd, "--config", path).CombinedOutput()
		var ee *exec.ExitError
		if code := map[string]int{"validate": 78, "check": 1}[cmd]; !errors.As(err, &ee) || ee.ExitCode() != code {
			t.Errorf("%s: got %v, want exit %d\n%s", cmd, err, code, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: output lacks %q:\n%s", cmd, want, out)
		}
	}
}
