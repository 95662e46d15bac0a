package deploy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// debRoot is a throwaway root that dpkg installs into: dpkg --root with
// --force-script-chrootless, so that the maintainer scripts run (with
// DPKG_ROOT set to the root) without a shell inside it. Nothing of the
// host is installed, configured or removed.
type debRoot struct {
	t    *testing.T
	dir  string
	fake string // directory of fake systemctl/systemd-sysctl
	log  string // what the fakes were asked to do
}

// newDebRoot makes an empty root holding only a dpkg database. It is
// world-searchable (not t.TempDir's 0700) so that uid 65534 can run what is
// installed there.
func newDebRoot(t *testing.T) *debRoot {
	t.Helper()
	dir, err := os.MkdirTemp("", "cnbridged-debroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Maintainer scripts that ignored DPKG_ROOT would act on the running
	// system: reload its systemd, apply the sysctl, stop a service. The
	// fakes record any such call (the scripts run with /run/systemd/system
	// present, see dpkg).
	r := &debRoot{t: t, dir: dir, fake: t.TempDir()}
	r.log = filepath.Join(r.fake, "calls")
	for _, tool := range []string{"systemctl", "systemd-sysctl", "deb-systemd-helper", "deb-systemd-invoke"} {
		script := "#!/bin/sh\necho \"" + tool + " $*\" >>" + r.log + "\n"
		if err := os.WriteFile(filepath.Join(r.fake, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// path is p inside the root.
func (r *debRoot) path(p string) string { return filepath.Join(r.dir, p) }

// dpkg runs dpkg on the root, in a mount namespace whose /run is a fresh
// tmpfs with /run/systemd/system in it (as on a systemd host) and with the
// fakes first in PATH.
func (r *debRoot) dpkg(args ...string) []byte {
	r.t.Helper()
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec dpkg "$@"`, "sh",
		"--root=" + r.dir, "--force-script-chrootless", "--log=/dev/null"}, args...)
	cmd := exec.CommandContext(r.t.Context(), "unshare", argv...)
	cmd.Env = append(os.Environ(), "PATH="+r.fake+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("dpkg --root %s %s: %v\n%s", r.dir, strings.Join(args, " "), err, out)
	}
	return out
}

// query runs dpkg-query on the root's database.
func (r *debRoot) query(args ...string) ([]byte, error) {
	return exec.CommandContext(r.t.Context(), "dpkg-query", append([]string{"--admindir=" + r.path("var/lib/dpkg")}, args...)...).Output()
}

func (r *debRoot) installed() bool {
	out, err := r.query("-W", "-f=${db:Status-Status}", "cnbridged")
	return err == nil && string(out) == "installed"
}

// TestPackageDeb is the install cycle an operator goes through, in a
// throwaway root: install, the unit verifies where it was installed and
// keeps its exposure, the installed config validates, man finds the
// pages, bash completes, README's links resolve, the copyright file names
// what the binary links; the installed daemon subscribes and delivers
// events as a non-root user holding exactly the unit's capabilities;
// remove keeps only the conffile; purge removes what the packaged service
// made and nothing of a daemon run otherwise; no maintainer script touches
// the running system.
func TestPackageDeb(t *testing.T) {
	cntest.NeedRoot(t, "dpkg --root, mount namespaces and setpriv")
	needTools(t, "dpkg", "dpkg-query", "man", "unshare", "setpriv")
	analyze := systemdAnalyze(t)
	deb, _ := buildPackages(t)
	r := newDebRoot(t)
	r.dpkg("-i", deb)

	want := packagedFiles(t, "/lib/systemd/system", "/usr/share/zsh/vendor-completions")
	noMan := dpkgExcluded("/usr/share/man/man1/cnbridged.1.gz")
	want = slices.DeleteFunc(want, func(p string) bool {
		if dpkgExcluded(p) {
			t.Logf("dpkg's path-exclude keeps %s from being installed on this host: not checking it", p)
			return true
		}
		return false
	})
	list, err := r.query("-L", "cnbridged")
	if err != nil {
		t.Fatalf("dpkg-query -L cnbridged: %v", err)
	}
	var got []string
	for _, p := range strings.Fields(string(list)) {
		if fi, err := os.Stat(r.path(p)); err == nil && !fi.IsDir() {
			got = append(got, p)
		}
	}
	slices.Sort(got)
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("installed package lacks %s; it has %q", p, got)
		}
	}
	if conf, _ := r.query("-W", "-f=${Conffiles}", "cnbridged"); !bytes.Contains(conf, []byte("/etc/cnbridged/cnbridged.yaml ")) {
		t.Errorf("conffiles = %q, want /etc/cnbridged/cnbridged.yaml", conf)
	}
	bin := r.path(installedBinary)

	t.Run("unit verifies as installed", func(t *testing.T) {
		unit, err := os.ReadFile(r.path("/lib/systemd/system/cnbridged.service"))
		if err != nil {
			t.Fatal(err)
		}
		verifyUnit(t, analyze, "/lib/systemd/system/cnbridged.service", unit, bin)
		checkExposure(t, analyze, "--root="+r.dir, "cnbridged.service")
	})
	t.Run("installed config validates", func(t *testing.T) {
		out := run(t, bin, "validate", "--config", r.path("/etc/cnbridged/cnbridged.yaml"))
		t.Logf("%s", out)
	})
	t.Run("version", func(t *testing.T) {
		if out := run(t, bin, "--version"); !bytes.Contains(out, []byte(packageVersion)) {
			t.Errorf("cnbridged --version = %q, want it to name %s", out, packageVersion)
		}
	})
	t.Run("man finds the pages", func(t *testing.T) {
		if noMan {
			t.Skip("dpkg excludes /usr/share/man on this host (path-exclude in /etc/dpkg/dpkg.cfg.d)")
		}
		for _, page := range []string{"cnbridged", "cnbridged-run", "cnbridged-health"} {
			out := run(t, "man", "-M", r.path("/usr/share/man"), "-w", page)
			if want := r.path("/usr/share/man/man1/" + page + ".1.gz"); strings.TrimSpace(string(out)) != want {
				t.Errorf("man -w %s = %q, want %s", page, out, want)
			}
		}
	})
	t.Run("bash completes", func(t *testing.T) {
		const loader = "/usr/share/bash-completion/bash_completion"
		if !exists(loader) {
			t.Skipf("%s missing (apt-get install bash-completion)", loader)
		}
		out := run(t, "bash", "-c", ". "+loader+"; . "+r.path("/usr/share/bash-completion/completions/cnbridged")+"; complete -p cnbridged")
		if !bytes.Contains(out, []byte("cnbridged")) {
			t.Errorf("complete -p cnbridged after loading = %q", out)
		}
	})
	t.Run("README's links resolve", func(t *testing.T) {
		readmeLinksResolve(t, r.path("/usr/share/doc/cnbridged"))
	})
	t.Run("copyright names what the binary links", func(t *testing.T) {
		copyrightNamesModules(t, bin, r.path("/usr/share/doc/cnbridged/copyright"))
	})
	t.Run("the unit's capabilities subscribe", func(t *testing.T) {
		unitCapabilitiesSubscribe(t, r)
	})

	// Remove: everything goes but the conffile.
	r.dpkg("-r", "cnbridged")
	for _, p := range want {
		if p == "/etc/cnbridged/cnbridged.yaml" {
			if !exists(r.path(p)) {
				t.Errorf("dpkg -r removed the conffile %s; only --purge may", p)
			}
			continue
		}
		if exists(r.path(p)) {
			t.Errorf("%s still exists after dpkg -r", p)
		}
	}

	// Purge: what the packaged service made goes (DynamicUser keeps its
	// state in /var/lib/private with a symlink in /var/lib); a daemon run
	// some other way keeps its log directory and tap socket.
	for _, d := range []string{"/var/lib/private/cnbridged", "/var/log", "/run/cnbridged"} {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(r.path("/var/lib/private/cnbridged/state.json"), []byte("{}"), 0o600)
	if err := os.Symlink("private/cnbridged", r.path("/var/lib/cnbridged")); err != nil {
		t.Fatal(err)
	}
	foreign := []string{"/var/log/cnbridged/events.jsonl", "/run/cnbridged/tap.sock"}
	for _, f := range foreign {
		os.MkdirAll(filepath.Dir(r.path(f)), 0o755)
		if err := os.WriteFile(r.path(f), []byte("not the package's\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.dpkg("--purge", "cnbridged")
	for _, p := range append(want, "/etc/cnbridged", "/usr/share/doc/cnbridged", "/var/lib/cnbridged", "/var/lib/private/cnbridged") {
		if exists(r.path(p)) {
			t.Errorf("%s still exists after dpkg --purge", p)
		}
	}
	for _, f := range foreign {
		if !exists(r.path(f)) {
			t.Errorf("dpkg --purge removed %s, which a daemon not installed from the package made", f)
		}
	}
	if r.installed() {
		t.Errorf("cnbridged still installed after purge")
	}
	if calls, err := os.ReadFile(r.log); err == nil {
		t.Errorf("maintainer scripts acted on the running system instead of the root:\n%s", calls)
	}
}

// readmeLinksResolve checks that every relative link of README.md in doc
// (the installed /usr/share/doc/cnbridged) names a file or directory there.
func readmeLinksResolve(t *testing.T, doc string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(doc, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Not in code: fenced blocks and `spans` (a regexp there is no link).
	b = regexp.MustCompile("(?s)```.*?```").ReplaceAll(b, nil)
	b = regexp.MustCompile("`[^`\n]*`").ReplaceAll(b, nil)
	links := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`).FindAllSubmatch(b, -1)
	n := 0
	for _, m := range links {
		l := string(m[1])
		if strings.Contains(l, "://") || strings.HasPrefix(l, "mailto:") {
			continue
		}
		n++
		if !exists(filepath.Join(doc, l)) {
			t.Errorf("README.md links %s, which the package does not install under /usr/share/doc/cnbridged", l)
		}
	}
	if n == 0 {
		t.Errorf("README.md has no relative link: the check found nothing to check")
	}
}

// copyrightNamesModules checks the copyright file against the modules
// `go version -m` says bin links: each is named with its version and a
// license text follows.
func copyrightNamesModules(t *testing.T, bin, copyright string) {
	t.Helper()
	text, err := os.ReadFile(copyright)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	sections := strings.Split(string(text), "\n------------------------------------------------------------------------\n")
	deps := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "dep" {
			continue
		}
		deps++
		name := f[1] + " " + f[2]
		i := slices.IndexFunc(sections, func(s string) bool { return strings.HasPrefix(s, name+"\n") })
		if i < 0 {
			t.Errorf("copyright does not name %s, which /usr/bin/cnbridged links", name)
			continue
		}
		if body := sections[i][len(name):]; !strings.Contains(body, "[") || len(strings.TrimSpace(body)) < 100 {
			t.Errorf("copyright names %s without its license text: %q", name, body)
		}
	}
	if deps == 0 || !strings.Contains(string(text), "The Go standard library") {
		t.Errorf("copyright: %d linked modules found, Go's own license named: %v", deps, strings.Contains(string(text), "The Go standard library"))
	}
}

// unitCapabilitiesSubscribe runs the installed daemon the way the
// installed unit would, short of systemd: as a non-root user (uid 65534
// standing in for the dynamic user) holding exactly the unit's
// AmbientCapabilities, with its CapabilityBoundingSet and NoNewPrivileges,
// and with /proc mounted as its ProtectProc= asks. `cnbridged check` must
// show the subscription and events flowing, and `cnbridged run` with the
// packaged config must deliver the exec of a process the test starts.
func unitCapabilitiesSubscribe(t *testing.T, r *debRoot) {
	unit, err := os.ReadFile(r.path("/lib/systemd/system/cnbridged.service"))
	if err != nil {
		t.Fatal(err)
	}
	entries := parseUnit(t, unit)
	one := func(key string) string {
		v := serviceValues(entries, key)
		if len(v) != 1 {
			t.Fatalf("[Service] %s = %q, want one value", key, v)
		}
		return v[0]
	}
	caps := func(key string) string { // "CAP_NET_ADMIN" -> "-all,+net_admin"
		s := "-all"
		for _, c := range strings.Fields(one(key)) {
			s += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		return s
	}
	if one("DynamicUser") != "yes" {
		t.Fatalf("DynamicUser=%s: this test stands in uid 65534 for the dynamic user", one("DynamicUser"))
	}
	wrap := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t proc -o hidepid="$0" proc /proc && exec "$@"`, one("ProtectProc"),
		"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--inh-caps=" + caps("AmbientCapabilities"), "--ambient-caps=" + caps("AmbientCapabilities"),
		"--bounding-set=" + caps("CapabilityBoundingSet")}
	if !isFalse(one("NoNewPrivileges")) {
		wrap = append(wrap, "--no-new-privs")
	}
	t.Logf("as the unit would: %s", strings.Join(wrap, " "))

	// The writable places the unit gives the dynamic user, owned by 65534.
	w, err := os.MkdirTemp("", "cnbridged-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(w) })
	for _, d := range []string{"", "log", "state", "run"} {
		os.MkdirAll(filepath.Join(w, d), 0o750)
		if err := os.Chown(filepath.Join(w, d), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	l.Close()
	archive := filepath.Join(w, "log", "events.jsonl")
	args := []string{"--config", r.path("/etc/cnbridged/cnbridged.yaml"), "--set", "metrics.listen=" + metrics,
		"--set", "state_dir=" + filepath.Join(w, "state"), "--set", "tap.socket=" + filepath.Join(w, "run", "tap.sock"),
		"--set", "sinks.archive.path=" + archive}
	bin := r.path(installedBinary)

	out, err := exec.CommandContext(t.Context(), wrap[0], append(append(wrap[1:], bin, "check"), args...)...).CombinedOutput()
	if err != nil {
		t.Errorf("check with the unit's capabilities: %v\n%s", err, out)
	}
	for _, line := range []string{"ok   CAP_NET_ADMIN", "ok   connector socket", "ok   subscription", "ok   events flow"} {
		if !bytes.Contains(out, []byte(line)) {
			t.Errorf("check with the unit's capabilities lacks %q:\n%s", line, out)
		}
	}

	var logs bytes.Buffer
	cmd := exec.Command(wrap[0], append(append(wrap[1:], bin, "run", "--set", "log.format=json"), args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends the daemon; its output may be read only then (exec's
	// copying goroutines write logs until Wait returns).
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("daemon output:\n%s", logs.String())
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for ready := false; !ready; {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the daemon exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon was not ready within 30s")
		}
		if resp, err := http.Get("http://" + metrics + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A process of root's, which /proc hides from the daemon: events do not
	// need /proc.
	child := exec.Command("/bin/true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	exec1 := `"event":"exec","cpu":`
	pid := `"pid":` + strconv.Itoa(child.Process.Pid) + `,`
	for {
		b, _ := os.ReadFile(archive)
		if slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
			return strings.Contains(l, exec1) && strings.Contains(l, pid)
		}) {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("no exec of pid %d in %s within 60s:\n%s", child.Process.Pid, archive, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if !strings.Contains(logs.String(), `"msg":"connector join rights","cap_net_admin":true`) {
		t.Errorf(`the daemon did not log "connector join rights" with cap_net_admin true:\n%s`, logs.String())
	}
}
