package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifests decodes every YAML document of a file, by kind.
func manifests(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		kind, _ := doc["kind"].(string)
		docs[kind] = doc
	}
	return docs
}

// get walks a decoded document: keys for maps, ints for lists. It returns
// nil when the path does not exist.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestKubernetesDaemonSet renders the manifests and checks the fields the
// deployment depends on: host namespaces, one capability, probes through
// `cnbridged health` (no curl in the image), liveness on /healthz, scrape
// annotations that name the metrics port, a config mount the file watch can
// follow, and no advice to signal PID 1 (with hostPID that is the host's
// init, and the image has no kill).
func TestKubernetesDaemonSet(t *testing.T) {
	docs := manifests(t, daemonSet)
	ds := docs["DaemonSet"]
	if ds == nil {
		t.Fatalf("%s has no DaemonSet", daemonSet)
	}
	pod := get(ds, "spec", "template")
	spec := get(pod, "spec")
	for _, k := range []string{"hostNetwork", "hostPID"} {
		if get(spec, k) != true {
			t.Errorf("spec.template.spec.%s = %v, want true", k, get(spec, k))
		}
	}
	if get(spec, "hostUsers") == false {
		t.Error("hostUsers: false: the process connector ignores listeners outside the initial user namespace")
	}
	c := get(spec, "containers", 0)
	args := strs(get(c, "args"))
	configPath := ""
	if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
		configPath = args[i+1]
	}
	if configPath == "" {
		t.Fatalf("container args %q name no --config", args)
	}

	wantHealth := []string{"/usr/bin/cnbridged", "health", "--config", configPath}
	if got := strs(get(c, "readinessProbe", "exec", "command")); len(got) < len(wantHealth) || !slices.Equal(got[:len(wantHealth)], wantHealth) {
		t.Errorf("readinessProbe.exec.command = %q, want it to start %q", got, wantHealth)
	}
	if got := get(c, "livenessProbe", "httpGet", "path"); got != "/healthz" {
		t.Errorf("livenessProbe.httpGet.path = %v, want /healthz (readiness fails during NATS outages; liveness must not)", got)
	}
	if get(c, "startupProbe") != nil {
		t.Error("startupProbe set: a failing start-up probe kills the pod, e.g. while NATS is down")
	}

	sc := get(c, "securityContext")
	if get(sc, "allowPrivilegeEscalation") != false || get(sc, "privileged") == true {
		t.Errorf("container securityContext = %v, want allowPrivilegeEscalation false and not privileged", sc)
	}
	if d, a := strs(get(sc, "capabilities", "drop")), strs(get(sc, "capabilities", "add")); !slices.Equal(d, []string{"ALL"}) || !slices.Equal(a, []string{"NET_ADMIN"}) {
		t.Errorf("capabilities drop %q add %q, want drop [ALL] add [NET_ADMIN]", d, a)
	}

	// Scraping: annotations naming the container's metrics port.
	ann := get(pod, "metadata", "annotations")
	port := get(c, "ports", 0, "containerPort")
	if get(ann, "prometheus.io/scrape") != "true" || get(ann, "prometheus.io/path") != "/metrics" {
		t.Errorf("pod annotations = %v, want prometheus.io/scrape \"true\" and path /metrics", ann)
	}
	if p, ok := port.(int); !ok || get(ann, "prometheus.io/port") != strconv.Itoa(p) {
		t.Errorf("prometheus.io/port = %v, want the metrics containerPort %v", get(ann, "prometheus.io/port"), port)
	}

	// The config directory is mounted whole (a subPath mount never
	// updates, so the file watch would never see an edit).
	for _, m := range get(c, "volumeMounts").([]any) {
		if get(m, "mountPath") == "/etc/cnbridged" && get(m, "subPath") != nil {
			t.Errorf("config mounted with subPath %v: ConfigMap updates would never reach the daemon", get(m, "subPath"))
		}
	}

	raw, _ := os.ReadFile(daemonSet)
	for _, bad := range []string{"kill -HUP", "kill -s HUP", "kill 1"} {
		if bytes.Contains(raw, []byte(bad)) {
			t.Errorf("%s still advises %q: with hostPID, PID 1 is the host's init, and the image has no kill", daemonSet, bad)
		}
	}

	// The PodMonitor selects these pods on the named port.
	pm := manifests(t, "kubernetes/podmonitor.yaml")["PodMonitor"]
	if pm == nil {
		t.Fatal("kubernetes/podmonitor.yaml has no PodMonitor")
	}
	labels := get(pod, "metadata", "labels").(map[string]any)
	for k, v := range get(pm, "spec", "selector", "matchLabels").(map[string]any) {
		if labels[k] != v {
			t.Errorf("PodMonitor selects %s=%v; the pods have %v", k, v, labels)
		}
	}
	if got, want := get(pm, "spec", "podMetricsEndpoints", 0, "port"), get(c, "ports", 0, "name"); got != want {
		t.Errorf("PodMonitor port %v, want the container's port name %v", got, want)
	}
}

// TestDockerHealthcheck: the image checks itself with `cnbridged health`
// in exec form (distroless: no shell, no curl).
func TestDockerHealthcheck(t *testing.T) {
	var hc []string
	for _, in := range parseDockerfile(t) {
		if in.cmd == "HEALTHCHECK" {
			hc = strings.Fields(in.args)
		}
	}
	i := slices.Index(hc, "CMD")
	if i < 0 {
		t.Fatalf("Dockerfile HEALTHCHECK %q has no CMD", hc)
	}
	cmd := strings.Join(hc[i+1:], " ")
	if !strings.HasPrefix(cmd, `["/usr/bin/cnbridged", "health"`) {
		t.Errorf("HEALTHCHECK CMD %s, want exec form running /usr/bin/cnbridged health", cmd)
	}
}

// TestDockerRunNoNewPrivileges: every `docker run` the docs show sets
// --security-opt no-new-privileges.
func TestDockerRunNoNewPrivileges(t *testing.T) {
	n := 0
	for _, doc := range []string{"../README.md", "README.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatalf("read %s: %v", doc, err)
		}
		var cmd strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if cmd.Len() == 0 && !strings.HasPrefix(line, "docker run") {
				continue
			}
			rest, more := strings.CutSuffix(line, `\`)
			cmd.WriteString(rest + " ")
			if more {
				continue
			}
			n++
			if !strings.Contains(cmd.String(), "--security-opt no-new-privileges") {
				t.Errorf("%s: %q lacks --security-opt no-new-privileges", doc, cmd.String())
			}
			cmd.Reset()
		}
	}
	if n == 0 {
		t.Error("found no docker run command in the docs")
	}
}
