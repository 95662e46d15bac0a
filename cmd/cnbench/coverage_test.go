package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestCoverageShort runs a short form of the coverage harness (cnbench
// --only coverage) against this tree's daemon: 50 execs, quiet and with
// two busy loops, forkstat beside it. How many execs a reader names
// depends on the machine, so it asserts no rate; it asserts that the
// harness works and what holds on any machine: every exec has its line,
// each named, marked late or marked missing (none unexplained, none with
// another exec's arguments), and the daemon names at least half as many
// as forkstat in the same run.
func TestCoverageShort(t *testing.T) {
	cntest.NeedRoot(t, "the daemon and forkstat subscribe to process events")
	if _, err := exec.LookPath("forkstat"); err != nil {
		t.Skip("forkstat is not installed (apt-get install forkstat; .ci/run installs it)")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "cnbridged")
	if out, err := exec.Command("go", "build", "-o", bin, "../cnbridged").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h := &harness{bin: bin, tmp: tmp, daemonCPU: -1, logf: t.Logf}
	const execs = 50
	rep := h.coverage(execs, 1, []string{"quiet", "loaded"}, []coverageDaemon{{name: "this-tree", bin: bin}})
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2 (quiet, loaded)", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Skipped != "" {
			t.Fatalf("%s run skipped: %s", r.Load, r.Skipped)
		}
		if r.ForkstatErr != "" || r.Forkstat < 0 {
			t.Fatalf("%s run: forkstat did not run: %s", r.Load, r.ForkstatErr)
		}
		if r.Lines != execs || r.Named+r.Late+r.Missing != execs {
			t.Errorf("%s run: %d exec lines for %d execs, %d named + %d late + %d missing; want every exec accounted for once",
				r.Load, r.Lines, execs, r.Named, r.Late, r.Missing)
		}
		if r.Unexplained != 0 || r.Wrong != 0 {
			t.Errorf("%s run: %d lines neither named nor marked, %d with another exec's arguments: %q",
				r.Load, r.Unexplained, r.Wrong, r.Examples)
		}
		if 2*r.Named < r.Forkstat {
			t.Errorf("%s run: named %d, forkstat %d: want at least half of forkstat's", r.Load, r.Named, r.Forkstat)
		}
		t.Logf("%s: named %d/%d (late %d, missing %d), forkstat %d, load %s, capture %v", r.Load, r.Named, execs, r.Late, r.Missing, r.Forkstat, r.LoadAvg, r.Capture)
	}
	var out bytes.Buffer
	printCoverage(&out, rep)
	if !strings.Contains(out.String(), "runs ≥ forkstat") || !strings.Contains(out.String(), "this-tree") {
		t.Errorf("the printed table lacks its summary:\n%s", out.String())
	}
}

// TestCoverageKind: how a line of the daemon is accounted for.
func TestCoverageKind(t *testing.T) {
	const tag = "cnbcov1r0quiet"
	tests := []struct {
		line covLine
		want string
	}{
		{covLine{cmdline: []string{"/bin/true", tag + "-7"}}, "named"},
		{covLine{cmdline: []string{"bash", "/x"}}, "wrong"},
		{covLine{late: []string{"cmdline", "exe"}, missing: []string{"exe", "cmdline", "cwd"}}, "late"},
		{covLine{missing: []string{"exe", "cmdline", "cwd"}}, "missing"},
		{covLine{missing: []string{"cwd"}}, "unexplained"},
		{covLine{}, "unexplained"},
	}
	for _, tt := range tests {
		if got := tt.line.kind(tag); got != tt.want {
			t.Errorf("kind(%+v) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

// TestCountTagged: forkstat's exec lines count once per distinct
// argument; other events, other tags and the header do not count.
func TestCountTagged(t *testing.T) {
	out := `Time     Event   PID Info   Duration Process
00:43:46 exec  13797                 /bin/true t-1
00:43:46 exec  13798                 /bin/true t-2
00:43:46 exec  13799                 /bin/true t-2
00:43:46 exec  13800                 true
00:43:46 fork  13801 parent          /bin/true t-3
00:43:46 exec  13802                 /bin/true tt-4
00:43:46 exec  13803                 /bin/true t-x
`
	if got := countTagged(strings.NewReader(out), "t"); got != 2 {
		t.Errorf("countTagged = %d, want 2 (t-1, t-2)", got)
	}
}

// TestHistQuantile: quantiles of a histogram's increase between scrapes.
func TestHistQuantile(t *testing.T) {
	bucket := func(le string, v float64) sample {
		return sample{name: "d_bucket", labels: map[string]string{"le": le}, v: v}
	}
	m0 := metrics{bucket("0.001", 10), bucket("0.002", 10), bucket("+Inf", 10)}
	m1 := metrics{bucket("0.001", 20), bucket("0.002", 30), bucket("+Inf", 30)}
	for _, tt := range []struct{ q, want float64 }{{0.5, 0.001}, {0.25, 0.0005}, {0.75, 0.0015}} {
		if got := histQuantile(m0, m1, "d", tt.q); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", tt.want) {
			t.Errorf("q%.2f = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := histQuantile(m1, m1, "d", 0.5); got != 0 {
		t.Errorf("no observations: %v, want 0", got)
	}
}
