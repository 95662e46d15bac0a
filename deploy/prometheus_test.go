package deploy

import (
	"os/exec"
	"testing"
)

// promtoolHint says how to get promtool on Debian, as .ci/run does.
const promtoolHint = "apt-get update && apt-get install -y --no-install-recommends prometheus"

func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("promtool not found in PATH, so the alerting rules cannot be checked; install it with %q", promtoolHint)
	}
	return path
}

// TestAlertRulesCheck runs promtool check rules on the shipped alerts.
func TestAlertRulesCheck(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), promtool(t), "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules prometheus/alerts.yaml: %v\n%s", err, out)
	}
}

// TestAlertRulesUnit runs the rules' unit tests: each alert fires on its
// condition and stays quiet on a healthy daemon.
func TestAlertRulesUnit(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), promtool(t), "test", "rules", "alerts_test.yaml")
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules prometheus/alerts_test.yaml: %v\n%s", err, out)
	}
}
