package deploy

import (
	"bytes"
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
func packagedFiles(unitDir, zshDir string) []string {
	files := []string{
		"/usr/bin/cnbridged",
		unitDir + "/cnbridged.service",
		"/etc/cnbridged/cnbridged.yaml",
		"/usr/share/bash-completion/completions/cnbridged",
		zshDir + "/_cnbridged",
		"/usr/share/fish/vendor_completions.d/cnbridged.fish",
		"/usr/share/doc/cnbridged/README.md",
		"/usr/share/doc/cnbridged/prometheus/alerts.yaml",
		"/usr/share/doc/cnbridged/grafana/cnbridged.json",
		"/usr/lib/sysctl.d/60-cnbridged.conf",
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

// dpkg runs dpkg, waiting while another dpkg or apt holds the lock.
func dpkg(t *testing.T, args ...string) []byte {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := exec.CommandContext(t.Context(), "dpkg", args...).CombinedOutput()
		if err == nil {
			return out
		}
		if !bytes.Contains(out, []byte("lock")) || time.Now().After(deadline) {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Second)
	}
}

func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
	return err == nil && string(out) == "installed"
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

// TestPackageDeb is the install cycle an operator goes through: dpkg -i,
// the unit verifies where it was installed, the installed config
// validates, man finds the page, bash completes; dpkg -r keeps only the
// conffile; dpkg --purge leaves nothing.
func TestPackageDeb(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs a package: needs root")
	}
	needTools(t, "dpkg", "dpkg-query", "man")
	analyze := systemdAnalyze(t)
	if installed("cnbridged") {
		t.Skip("a cnbridged package is already installed on this host; not touching it")
	}
	deb, _ := buildPackages(t)

	dpkg(t, "-i", deb)
	t.Cleanup(func() {
		if installed("cnbridged") || exists("/etc/cnbridged") {
			exec.Command("dpkg", "--purge", "cnbridged").Run()
		}
	})

	want := packagedFiles("/lib/systemd/system", "/usr/share/zsh/vendor-completions")
	noMan := dpkgExcluded("/usr/share/man/man1/cnbridged.1.gz")
	want = slices.DeleteFunc(want, func(p string) bool {
		if dpkgExcluded(p) {
			t.Logf("dpkg's path-exclude keeps %s from being installed on this host: not checking it", p)
			return true
		}
		return false
	})
	var got []string
	for _, p := range strings.Fields(string(dpkg(t, "-L", "cnbridged"))) {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			got = append(got, p)
		}
	}
	slices.Sort(got)
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("installed package lacks %s; it has %q", p, got)
		}
	}
	if conf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "cnbridged"); !bytes.Contains(conf, []byte("/etc/cnbridged/cnbridged.yaml ")) {
		t.Errorf("conffiles = %q, want /etc/cnbridged/cnbridged.yaml", conf)
	}

	t.Run("unit verifies as installed", func(t *testing.T) {
		out, err := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", "/lib/systemd/system/cnbridged.service").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify /lib/systemd/system/cnbridged.service: err %v, output:\n%s\nwant no error and no output", err, out)
		}
	})
	t.Run("installed config validates", func(t *testing.T) {
		out := run(t, "/usr/bin/cnbridged", "validate", "--config", "/etc/cnbridged/cnbridged.yaml")
		t.Logf("%s", out)
	})
	t.Run("version", func(t *testing.T) {
		if out := run(t, "/usr/bin/cnbridged", "--version"); !bytes.Contains(out, []byte(packageVersion)) {
			t.Errorf("cnbridged --version = %q, want it to name %s", out, packageVersion)
		}
	})
	t.Run("man finds the pages", func(t *testing.T) {
		if noMan {
			t.Skip("dpkg excludes /usr/share/man on this host (path-exclude in /etc/dpkg/dpkg.cfg.d)")
		}
		for _, page := range []string{"cnbridged", "cnbridged-run", "cnbridged-health"} {
			out := run(t, "man", "-w", page)
			if want := "/usr/share/man/man1/" + page + ".1.gz"; strings.TrimSpace(string(out)) != want {
				t.Errorf("man -w %s = %q, want %s", page, out, want)
			}
		}
	})
	t.Run("bash completes", func(t *testing.T) {
		const loader = "/usr/share/bash-completion/bash_completion"
		if !exists(loader) {
			t.Skipf("%s missing (apt-get install bash-completion)", loader)
		}
		// bash-completion loads a command's completion on first use;
		// _completion_loader is what it runs then (returning 124:
		// "loaded, retry").
		out := run(t, "bash", "-c", ". "+loader+"; _completion_loader cnbridged; complete -p cnbridged")
		if !bytes.Contains(out, []byte("cnbridged")) {
			t.Errorf("complete -p cnbridged after loading = %q", out)
		}
	})

	// Remove: everything goes but the conffile.
	dpkg(t, "-r", "cnbridged")
	for _, p := range want {
		if p == "/etc/cnbridged/cnbridged.yaml" {
			if !exists(p) {
				t.Errorf("dpkg -r removed the conffile %s; only --purge may", p)
			}
			continue
		}
		if exists(p) {
			t.Errorf("%s still exists after dpkg -r", p)
		}
	}
	// Purge: nothing is left.
	dpkg(t, "--purge", "cnbridged")
	for _, p := range append(want, "/etc/cnbridged", "/usr/share/doc/cnbridged", "/var/lib/cnbridged", "/var/log/cnbridged") {
		if exists(p) {
			t.Errorf("%s still exists after dpkg --purge", p)
		}
	}
	if installed("cnbridged") {
		t.Errorf("cnbridged still installed after purge")
	}
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
	want := packagedFiles("/usr/lib/systemd/system", "/usr/share/zsh/site-functions")
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
