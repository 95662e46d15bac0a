package config_test

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/config"
)

// TestSetListItems: --set reaches list items by index, in the built-in
// default and in a file, and an index one past the end adds an item.
func TestSetListItems(t *testing.T) {
	load := func(t *testing.T, path string, set ...string) *config.Config {
		t.Helper()
		c, err := config.Load(config.Options{Path: path, Set: set, DefaultPath: noDefault(t), Environ: []string{}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return c
	}
	t.Run("built-in default: enriched JSON without a file", func(t *testing.T) {
		c := load(t, "", "routes[0].enrich=true", "routes[0].ancestors=2")
		if r := c.Routes[0]; !r.Enrich || r.Ancestors != 2 || r.Match != "1.1" || !cmp.Equal(r.Sinks, []string{"stdout"}) {
			t.Errorf("routes[0] got %+v, want the built-in route with enrich and 2 ancestors", r)
		}
		if s := c.Sinks["stdout"]; s == nil || s.Type != "stdout" {
			t.Error("the built-in stdout sink is gone")
		}
	})
	t.Run("file: an item's key, a list element, a new item", func(t *testing.T) {
		path := writeConfig(t, minimal+"listener:\n  groups: [1, 3]\n")
		c := load(t, path, "routes[0].threads=false", "listener.groups[1]=5",
			"routes[1].match=2.*", "routes[1].sinks=out", "listener.batch_size=8")
		if len(c.Routes) != 2 || c.Routes[0].ThreadsOn() || c.Routes[1].Match != "2.*" || !cmp.Equal(c.Routes[1].Sinks, []string{"out"}) {
			t.Errorf("routes got %+v", c.Routes)
		}
		if !cmp.Equal(c.Listener.Groups, []int{1, 5}) || c.Listener.BatchSize != 8 {
			t.Errorf("listener got groups %v batch_size %d, want [1 5] and 8", c.Listener.Groups, c.Listener.BatchSize)
		}
	})
}

// TestSetErrorsNameTheSet: every problem a --set causes names that --set.
func TestSetErrorsNameTheSet(t *testing.T) {
	got := problems(t, minimal, nil,
		"routes[3].enrich=true", "routes[0].enrich=maybe", "routes[0].colour=red",
		"routes[1].match=2.1", "routes.0.enrich=true", "host[0]=x", "routes[x]=1")
	want := []string{
		`--set routes[3].enrich=true: routes[3]: routes has 1 item; an index from 0 to 1 (1 adds one)`,
		`--set routes.0.enrich=true: routes is a list: address its items as routes[0], routes[1], …`,
		`--set host[0]=x: host is the value "` + hostname(t) + `", not a list`,
		`--set routes[x]=1: "routes[x]": want a list index such as [0] after routes`,
		`--set routes[0].enrich=maybe: routes[0].enrich: "maybe": want true or false`,
		`--set routes[0].colour=red: routes[0].colour: unknown key`,
		`--set routes[1].match=2.1: routes[1].sinks: no sinks named`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConfigMessages: an unknown sink type is the one problem of its sink;
// a key given twice is file:line: key; a list given as one string is the
// list key's problem, not its first element's.
func TestConfigMessages(t *testing.T) {
	got := problems(t, `sinks:
  a: {type: bogus}
  b: {type: stdout}
  b: {type: stdout, queue_size: 5}
  c: {path: /x}
routes:
  - {match: "1.1", sinks: [a, b], Match: "2.1"}
listener:
  groups: "one"
  proc_events: exec
metrics:
  listen: ":9464"
Metrics: {listen: ":1"}
`, nil)
	want := []string{
		`:2: sinks.a.type: "bogus" is not stdout, file or nats`,
		`:4: sinks.b: given twice: also at line 3`,
		`:5: sinks.c.type: required: stdout, file or nats`,
		`:7: routes[0].match: given twice: also "match" at line 7 (keys are not case-sensitive)`,
		`:9: listener.groups: "one": want a list of integers (a YAML list, or a comma-separated string)`,
		`:13: metrics: given twice: also "metrics" at line 11 (keys are not case-sensitive)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
