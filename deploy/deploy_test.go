package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/config"
)

const (
	// unitFile is the systemd unit under test, relative to this package.
	unitFile = "systemd/cnbridged.service"
	// dockerfile is the image recipe at the repository root.
	dockerfile = "../Dockerfile"
	// buildScript holds the one copy of the release build flags.
	buildScript = "build-static.sh"
	// installedBinary is where the unit and the image expect the daemon.
	installedBinary = "/usr/bin/cnbridged"
	// maxExposure is the highest acceptable "Overall exposure level" from
	// systemd-analyze security: 1.4 with CAP_NET_ADMIN, /proc of other
	// users hidden and IP traffic limited to loopback; what is left is
	// listed in deploy/README.md.
	maxExposure = 1.5
	// minSystemd is the first systemd whose systemd-analyze has
	// security --offline and --threshold.
	minSystemd = 250
)

// installHint says how to get systemd-analyze on Debian, as .ci/run does.
const installHint = "apt-get update && apt-get install -y systemd"

// systemdAnalyze returns the path of a systemd-analyze new enough for these
// tests, or skips the test.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not found in PATH, so the unit cannot be checked; install it with %q", installHint)
	}
	out, err := exec.CommandContext(t.Context(), path, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", path, err)
	}
	// First line: "systemd 252 (252.38-1~deb12u1)".
	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		t.Fatalf("%s --version printed %q, want \"systemd N ...\"", path, out)
	}
	v, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("%s --version printed %q, want \"systemd N ...\"", path, out)
	}
	if v < minSystemd {
		t.Skipf("systemd-analyze is from systemd %d; security --offline needs %d or later (%q on Debian 12 gives 252)", v, minSystemd, installHint)
	}
	return path
}

// testVersion is the version the tests build the daemon with.
const testVersion = "deploy-test-1.2.3"

// build is the one daemon binary the tests of this package share: building
// it takes a minute on a loaded machine.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range []string{build.dir, packages.dir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// buildStatic runs build-static.sh, the build the Dockerfile and the
// packages run, once per test binary, and returns the binary's path.
func buildStatic(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		if _, err := exec.LookPath("go"); err != nil {
			build.err = fmt.Errorf("go not found in PATH: %w", err)
			return
		}
		build.dir, build.err = os.MkdirTemp("", "cnbridged-deploy-test-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "cnbridged")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", buildScript, build.bin, testVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("sh %s %s %s: %w\n%s", buildScript, build.bin, testVersion, err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// unitEntry is one Key=Value line of a unit file.
type unitEntry struct {
	section, key, value string
	line                int
}

// parseUnit reads a unit file into its entries in file order. It handles
// what this repository's unit uses: sections, comments and Key=Value lines
// (no line continuations).
func parseUnit(t *testing.T, data []byte) []unitEntry {
	t.Helper()
	var (
		entries []unitEntry
		section string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			continue
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: line continuations are not supported by this test's parser", unitFile, n)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q is not Key=Value", unitFile, n, line)
		}
		entries = append(entries, unitEntry{
			section: section,
			key:     strings.TrimSpace(key),
			value:   strings.TrimSpace(value),
			line:    n,
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", unitFile, err)
	}
	return entries
}

// serviceValues returns every value given to key in [Service], in order.
func serviceValues(entries []unitEntry, key string) []string {
	var vals []string
	for _, e := range entries {
		if e.section == "Service" && e.key == key {
			vals = append(vals, e.value)
		}
	}
	return vals
}

// isFalse reports whether a systemd boolean value is false.
func isFalse(v string) bool {
	switch strings.ToLower(v) {
	case "0", "no", "false", "off":
		return true
	}
	return false
}

func readUnit(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatalf("read unit: %v", err)
	}
	return data
}

// TestUnitVerify runs systemd-analyze verify on the unit. verify insists that
// ExecStart's binary exists and is executable, so the test builds the daemon
// and verifies a copy of the unit whose ExecStart points at that build; the
// copy differs from the original in that one path only.
func TestUnitVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	verifyUnit(t, analyze, unitFile, readUnit(t), buildStatic(t))
}

// verifyUnit runs systemd-analyze verify on a copy of unit (read from
// name) whose ExecStart runs bin instead of /usr/bin/cnbridged.
func verifyUnit(t *testing.T, analyze, name string, unit []byte, bin string) {
	t.Helper()
	const execStart = "\nExecStart=" + installedBinary + " "
	if got := bytes.Count(unit, []byte(execStart)); got != 1 {
		t.Fatalf("%s has %d lines starting %q, want 1", name, got, strings.TrimSpace(execStart))
	}
	unit = bytes.Replace(unit, []byte(execStart), []byte("\nExecStart="+bin+" "), 1)

	// The copy keeps the unit's name: verify derives the unit name from it.
	copyPath := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(copyPath, unit, 0o644); err != nil {
		t.Fatalf("write unit copy: %v", err)
	}

	// verify exits 0 even when it warns (unknown keys, bad values), so any
	// output at all is a failure.
	out, err := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: err %v, output:\n%s\nwant no error and no output", name, err, out)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// TestUnitSecurityExposure checks the unit's sandboxing score.
func TestUnitSecurityExposure(t *testing.T) {
	checkExposure(t, systemdAnalyze(t), unitFile)
}

// checkExposure runs systemd-analyze security --offline on the unit args
// name (a file, or --root=DIR and a unit name) and checks the score.
func checkExposure(t *testing.T, analyze string, args ...string) {
	t.Helper()
	// --threshold is in tenths: 15 means 1.5. Above it the command exits
	// non-zero, but the score it prints is the better failure message.
	threshold := strconv.Itoa(int(math.Round(maxExposure * 10)))
	cmd := exec.CommandContext(t.Context(), analyze, append([]string{"security", "--offline=yes", "--no-pager",
		"--threshold=" + threshold}, args...)...)
	out, runErr := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		t.Fatalf("systemd-analyze security: %v\n%s", runErr, out)
	}

	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no overall exposure level (err %v):\n%s", runErr, out)
	}
	got, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("parse exposure %q: %v", m[1], err)
	}
	t.Logf("overall exposure level of %s: %.1f", strings.Join(args, " "), got)
	if got > maxExposure {
		t.Errorf("overall exposure level = %.1f, want <= %.1f; open findings:\n%s", got, maxExposure, openFindings(out))
	}
	if got <= maxExposure && runErr != nil {
		t.Errorf("systemd-analyze security --threshold=%s: %v with exposure %.1f:\n%s", threshold, runErr, got, out)
	}
}

// openFindings returns the lines of systemd-analyze security output that
// still add exposure.
func openFindings(out []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "✗") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestUnitKeepsHostNamespaces guards the settings the connector depends on.
// Each of the forbidden settings would raise the security score, so a future
// "hardening" could add one and still pass TestUnitSecurityExposure while
// silently cutting the daemon off from the kernel.
func TestUnitKeepsHostNamespaces(t *testing.T) {
	entries := parseUnit(t, readUnit(t))

	forbidden := []struct {
		key     string
		allowed func(string) bool // values that are harmless
		why     string
	}{
		{"PrivateNetwork", isFalse, "the connector exists only in the initial network namespace (ECONNREFUSED elsewhere)"},
		{"PrivateUsers", isFalse, "the process connector ignores listeners outside the initial user namespace"},
		{"PrivatePIDs", isFalse, "the process connector ignores listeners outside the initial PID namespace"},
		{"NetworkNamespacePath", func(string) bool { return false }, "the connector needs the initial network namespace"},
		{"JoinsNamespaceOf", func(string) bool { return false }, "the connector needs the host namespaces"},
		{"ProcSubset", func(v string) bool { return v == "all" }, "it hides /proc/net (connector ids, netlink drop counts)"},
	}
	for _, f := range forbidden {
		t.Run("no "+f.key, func(t *testing.T) {
			for _, e := range entries {
				if e.section == "Service" && e.key == f.key && !f.allowed(e.value) {
					t.Errorf("%s:%d: %s=%s must not be set: %s", unitFile, e.line, e.key, e.value, f.why)
				}
			}
		})
	}

	required := []struct {
		key, want string
	}{
		{"Type", "notify"},
		{"NotifyAccess", "main"},
		{"ExecStart", installedBinary + " run --config /etc/cnbridged/cnbridged.yaml"},
		// Joining the connector's groups needs CAP_NET_ADMIN on kernels
		// whose connector lacks NL_CFG_F_NONROOT_RECV (6.18 here):
		// exactly that one, ambient, and nothing else in the bounding
		// set. TestUnitCapabilitiesSubscribe runs the daemon with them.
		{"AmbientCapabilities", "CAP_NET_ADMIN"},
		{"CapabilityBoundingSet", "CAP_NET_ADMIN"},
		{"NoNewPrivileges", "yes"},
		// Other users' /proc/PID hidden: the packaged config does not
		// enrich, and run warns when a config does (the unit's comment
		// gives the drop-in).
		{"ProtectProc", "invisible"},
		{"RestrictAddressFamilies", "AF_NETLINK AF_UNIX AF_INET AF_INET6"},
		{"WatchdogSec", "30s"},
		// An invalid config exits 78: restarting cannot fix it.
		{"RestartPreventExitStatus", "78"},
		// The state file and the tap socket live here.
		{"StateDirectory", "cnbridged"},
		{"RuntimeDirectory", "cnbridged"},
		{"IPAddressDeny", "any"},
		{"IPAddressAllow", "localhost"},
	}
	for _, r := range required {
		t.Run(r.key, func(t *testing.T) {
			got := serviceValues(entries, r.key)
			if want := []string{r.want}; !slices.Equal(got, want) {
				t.Errorf("[Service] %s = %q, want %q", r.key, got, want)
			}
		})
	}
}

// TestStaticBuild builds the daemon exactly as the Dockerfile does and checks
// that the result needs no dynamic loader and runs.
func TestStaticBuild(t *testing.T) {
	const version = testVersion
	bin := buildStatic(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("open built binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a PT_INTERP program header: it is dynamically linked, want static", bin)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("read imported libraries: %v", err)
	}
	if len(libs) > 0 {
		t.Errorf("%s imports shared libraries %q, want none", bin, libs)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if !bytes.Contains(out, []byte(version)) {
		t.Errorf("%s version printed %q, want it to contain %q (set by -X main.version)", bin, out, version)
	}
}

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd, args string
}

func parseDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	var (
		ins  []dockerInstruction
		cont strings.Builder
	)
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && cont.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cont.WriteString(rest + " ")
			continue
		}
		cont.WriteString(line)
		full := cont.String()
		cont.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		ins = append(ins, dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	return ins
}

// TestDockerfile checks that the image builds with build-static.sh and only
// with it, so TestStaticBuild tests the image's binary, and that the image
// starts the daemon the way the systemd unit does.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)

	var scriptRuns int
	var entrypoint, cmd []string
	for _, in := range ins {
		switch in.cmd {
		case "RUN":
			if strings.Contains(in.args, "deploy/"+buildScript) {
				scriptRuns++
			}
			if strings.Contains(in.args, "go build") || strings.Contains(in.args, "go install") {
				t.Errorf("Dockerfile RUN %q builds Go code directly; build only through deploy/%s", in.args, buildScript)
			}
		case "ENTRYPOINT":
			entrypoint = nil
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Errorf("ENTRYPOINT %s is not exec (JSON) form: %v", in.args, err)
			}
		case "CMD":
			cmd = nil
			if err := json.Unmarshal([]byte(in.args), &cmd); err != nil {
				t.Errorf("CMD %s is not exec (JSON) form: %v", in.args, err)
			}
		}
	}
	if scriptRuns != 1 {
		t.Errorf("Dockerfile runs deploy/%s %d times, want 1", buildScript, scriptRuns)
	}

	var execStart []string
	for _, v := range serviceValues(parseUnit(t, readUnit(t)), "ExecStart") {
		execStart = strings.Fields(v)
	}
	got := slices.Concat(entrypoint, cmd)
	if !slices.Equal(got, execStart) {
		t.Errorf("Dockerfile ENTRYPOINT+CMD = %q, want the unit's ExecStart %q", got, execStart)
	}
}

// daemonSet holds the Kubernetes manifests, its ConfigMap included.
const daemonSet = "kubernetes/daemonset.yaml"

// configMapConfig returns the cnbridged.yaml block scalar of the ConfigMap in
// daemonSet, dedented. It reads the literal block ("cnbridged.yaml: |") by
// indentation, which is all this file uses.
func configMapConfig(t *testing.T, manifest []byte) []byte {
	t.Helper()
	var (
		out    bytes.Buffer
		indent = -1 // indentation of the block's lines, once known
		inside bool
	)
	for line := range strings.Lines(string(manifest)) {
		trimmed := strings.TrimLeft(line, " ")
		if !inside {
			if strings.TrimSpace(trimmed) == "cnbridged.yaml: |" {
				inside = true
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			out.WriteString("\n")
			continue
		}
		n := len(line) - len(trimmed)
		if indent < 0 {
			indent = n
		}
		if n < indent {
			break
		}
		out.WriteString(line[indent:])
	}
	if out.Len() == 0 {
		t.Fatalf("%s has no non-empty \"cnbridged.yaml: |\" block", daemonSet)
	}
	return out.Bytes()
}

// TestKubernetesConfig checks that the config the DaemonSet ships passes
// `cnbridged validate`, and that the pod keeps the host namespaces.
func TestKubernetesConfig(t *testing.T) {
	manifest, err := os.ReadFile(daemonSet)
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	for _, want := range []string{"hostNetwork: true", "hostPID: true", `add: ["NET_ADMIN"]`, `listen: "0.0.0.0:9464"`} {
		if !bytes.Contains(manifest, []byte(want)) {
			t.Errorf("%s does not contain %q", daemonSet, want)
		}
	}
	if bytes.Contains(manifest, []byte("hostUsers: false")) {
		t.Errorf("%s sets hostUsers: false; the process connector ignores listeners outside the initial user namespace", daemonSet)
	}

	cfg := filepath.Join(t.TempDir(), "cnbridged.yaml")
	if err := os.WriteFile(cfg, configMapConfig(t, manifest), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
	bin := buildStatic(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "validate", "--config", cfg).CombinedOutput(); err != nil {
		t.Errorf("cnbridged validate --config <ConfigMap cnbridged.yaml>: %v\n%s", err, out)
	}
}

// TestUnitDirectoriesMatchConfig: the directories the unit gives the
// dynamic user are where the packaged config writes: the state file, the
// tap socket and every file sink. Anywhere else ProtectSystem=strict makes
// the write fail.
func TestUnitDirectoriesMatchConfig(t *testing.T) {
	entries := parseUnit(t, readUnit(t))
	dir := func(key, base string) string {
		v := serviceValues(entries, key)
		if len(v) != 1 {
			t.Fatalf("[Service] %s = %q, want one directory", key, v)
		}
		return filepath.Join(base, v[0])
	}
	state, runtime, logs := dir("StateDirectory", "/var/lib"), dir("RuntimeDirectory", "/run"), dir("LogsDirectory", "/var/log")

	cfg, err := config.Load(config.Options{Path: "../configs/cnbridged.yaml", DefaultPath: filepath.Join(t.TempDir(), "none.yaml")})
	if err != nil {
		t.Fatalf("load the packaged config: %v", err)
	}
	if cfg.StateDir != state {
		t.Errorf("state_dir %s, but the unit's StateDirectory is %s", cfg.StateDir, state)
	}
	if got := filepath.Dir(cfg.Tap.Socket); got != runtime {
		t.Errorf("tap.socket %s is outside the unit's RuntimeDirectory %s", cfg.Tap.Socket, runtime)
	}
	for name, s := range cfg.Sinks {
		if f := s.File(); f != nil && filepath.Dir(f.Path) != logs {
			t.Errorf("sinks.%s.path %s is outside the unit's LogsDirectory %s", name, f.Path, logs)
		}
	}
}

// TestSysctlMatchesDefaultBuffer: the packaged sysctl.d file raises
// net.core.rmem_max to exactly the default listener.receive_buffer_bytes,
// so the capability-free unit gets the buffer the default config asks for.
func TestSysctlMatchesDefaultBuffer(t *testing.T) {
	b, err := os.ReadFile("sysctl/60-cnbridged.conf")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		got = append(got, line)
	}
	want := []string{fmt.Sprintf("net.core.rmem_max = %d", config.DefaultReceiveBufferBytes)}
	if !slices.Equal(got, want) {
		t.Errorf("sysctl/60-cnbridged.conf settings = %q, want %q", got, want)
	}
}
