package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// packageVersion is the version the package tests build.
const packageVersion = "1.2.3"

// packages are the .deb and .rpm package.sh builds, once per test binary.
var packages struct {
	once     sync.Once
	dir      string
	deb, rpm string
	err      error
}

// buildPackages runs package.sh (what `make package` runs) and returns the
// .deb and .rpm it wrote.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the .deb and .rpm: the full run (go test without -short) has it")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go not found in PATH: %v", err)
	}
	packages.once.Do(func() {
		packages.dir, packages.err = os.MkdirTemp("", "cnbridged-package-test-")
		if packages.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "sh", "package.sh", packages.dir, packageVersion).CombinedOutput()
		if err != nil {
			packages.err = fmt.Errorf("sh package.sh %s %s: %w\n%s", packages.dir, packageVersion, err, out)
			return
		}
		packages.deb = filepath.Join(packages.dir, "cnbridged_"+packageVersion+"_amd64.deb")
		packages.rpm = filepath.Join(packages.dir, "cnbridged-"+packageVersion+"-1.x86_64.rpm")
		for _, p := range []string{packages.deb, packages.rpm} {
			if _, err := os.Stat(p); err != nil {
				packages.err = fmt.Errorf("package.sh did not write %s: %w\n%s", p, err, out)
			}
		}
	})
	if packages.err != nil {
		t.Fatal(packages.err)
	}
	return packages.deb, packages.rpm
}

// packagedFiles are the files (not directories) both packages install,
// with the paths that differ by distribution given for each.
func packagedFiles(t *testing.T, unitDir, zshDir string) []string {
	files := []string{
		"/usr/bin/cnbridged",
		unitDir + "/cnbridged.service",
		"/etc/cnbridged/cnbridged.yaml",
		"/usr/share/bash-completion/completions/cnbridged",
		zshDir + "/_cnbridged",
		"/usr/share/fish/vendor_completions.d/cnbridged.fish",
		"/usr/share/doc/cnbridged/README.md",
		"/usr/share/doc/cnbridged/copyright",
		"/usr/share/doc/cnbridged/deploy/README.md",
		"/usr/share/doc/cnbridged/prometheus/alerts.yaml",
		"/usr/share/doc/cnbridged/grafana/cnbridged.json",
		"/usr/lib/sysctl.d/60-cnbridged.conf",
		"/usr/share/doc/cnbridged/enrich.conf",
		"/usr/share/doc/cnbridged/deploy/otel/collector.yaml",
	}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range docs {
		files = append(files, "/usr/share/doc/cnbridged/docs/"+filepath.Base(f))
	}
	nats, err := filepath.Glob("nats/*.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range nats {
		if ext := filepath.Ext(f); ext == ".conf" || ext == ".json" {
			files = append(files, "/usr/share/doc/cnbridged/deploy/nats/"+filepath.Base(f))
		}
	}
	for _, page := range manPages {
		files = append(files, "/usr/share/man/man1/"+page+".1.gz")
	}
	slices.Sort(files)
	return files
}

// manPages are the pages every package carries: one per command.
var manPages = []string{"cnbridged", "cnbridged-run", "cnbridged-validate", "cnbridged-check", "cnbridged-health",
	"cnbridged-stats", "cnbridged-emit", "cnbridged-version"}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found in PATH (apt-get install it; .ci/run does)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// dpkgExcluded reports whether dpkg's configuration keeps it from
// installing path: minimal container images exclude /usr/share/man and
// /usr/share/doc with path-exclude (path-include exceptions are ignored:
// none names this package's files).
func dpkgExcluded(path string) bool {
	files, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	for _, f := range append(files, "/etc/dpkg/dpkg.cfg") {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(l), "path-exclude")
			if !ok {
				continue
			}
			pattern := strings.TrimLeft(rest, " =")
			if m, _ := filepath.Match(pattern, path); m || strings.HasPrefix(path, strings.TrimSuffix(pattern, "*")) {
				return true
			}
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestPackageRPM checks the .rpm's file list and its config file.
func TestPackageRPM(t *testing.T) {
	needTools(t, "rpm")
	_, rpm := buildPackages(t)
	var files []string
	for _, l := range strings.Fields(string(run(t, "rpm", "-qlp", rpm))) {
		if l != "/etc/cnbridged" {
			files = append(files, l)
		}
	}
	slices.Sort(files)
	want := packagedFiles(t, "/usr/lib/systemd/system", "/usr/share/zsh/site-functions")
	for _, p := range want {
		if !slices.Contains(files, p) {
			t.Errorf("rpm -qlp lacks %s; it lists %q", p, files)
		}
	}
	for _, p := range files {
		if !slices.Contains(want, p) && !strings.HasPrefix(p, "/usr/share/man/man1/cnbridged-") {
			t.Errorf("rpm -qlp lists %s, which no test expects", p)
		}
	}
	if conf := run(t, "rpm", "-qp", "--configfiles", rpm); strings.TrimSpace(string(conf)) != "/etc/cnbridged/cnbridged.yaml" {
		t.Errorf("rpm -qp --configfiles = %q, want /etc/cnbridged/cnbridged.yaml", conf)
	}
	if v := run(t, "rpm", "-qp", "--queryformat", "%{VERSION}", rpm); string(v) != packageVersion {
		t.Errorf("rpm version = %q, want %s", v, packageVersion)
	}
}
