package top

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// recorded reads two scrapes of a real daemon (host web1: process events
// to a file sink and to an unreachable NATS server) taken 2 s apart.
func recorded(t *testing.T) (prev, cur Sample) {
	t.Helper()
	prev, cur, err := loadRecorded()
	if err != nil {
		t.Fatal(err)
	}
	return prev, cur
}

func loadRecorded() (prev, cur Sample, err error) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for i, s := range []*Sample{&prev, &cur} {
		f, err := os.Open(filepath.Join("testdata", []string{"metrics-1.prom", "metrics-2.prom"}[i]))
		if err != nil {
			return prev, cur, err
		}
		*s, err = ParseMetrics(f, "web1", t0.Add(time.Duration(i)*2*time.Second))
		f.Close()
		if err != nil {
			return prev, cur, err
		}
	}
	return prev, cur, nil
}

func plainStyles() Styles { return NewStyles(false) }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// TestRenderRecorded: the frame drawn from two recorded scrapes.
func TestRenderRecorded(t *testing.T) {
	prev, cur := recorded(t)
	golden(t, "local.golden", Render(Compute("http://127.0.0.1:9464/metrics", prev, cur), plainStyles(), 100, 40))
	// Before the second sample: totals only, no rates.
	golden(t, "first.golden", Render(Compute("http://127.0.0.1:9464/metrics", Sample{}, prev), plainStyles(), 100, 40))
}

func TestComputeRates(t *testing.T) {
	prev, cur := recorded(t)
	v := Compute("x", prev, cur)
	if len(v.Hosts) != 1 || v.Hosts[0].Host != "web1" {
		t.Fatalf("hosts %+v, want web1 only", v.Hosts)
	}
	var total float64
	for _, e := range []string{"fork", "exec", "exit", "comm", "uid", "gid", "sid", "ptrace", "coredump", "none", "unknown", "msg"} {
		k := Key{"web1", e}
		total += cur.Events[k] - prev.Events[k]
	}
	if got, want := v.Hosts[0].Total, total/2; got != want {
		t.Errorf("events/s = %v, want %v", got, want)
	}
}

// TestRenderFleet: hosts from NATS lines, a loss marker, no sink section.
func TestRenderFleet(t *testing.T) {
	f := &Fleet{s: Sample{Events: map[Key]float64{}, Lost: map[string]float64{}}, url: "nats://hub:4222", subject: "cn.>"}
	add := func(host, ev string, n int) {
		for range n {
			f.Add([]byte(`{"host":"` + host + `","proc":{"event":"` + ev + `"}}`))
		}
	}
	prev, _ := f.Sample()
	prev.Time = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	add("web1", "fork", 30)
	add("web1", "exec", 20)
	add("web2", "exit", 10)
	add("db1", "comm", 4)
	f.Add([]byte(`{"host":"web2","type":"loss","lost":7}`))
	f.Add([]byte(`not json`))
	cur, _ := f.Sample()
	cur.Time = prev.Time.Add(2 * time.Second)
	golden(t, "fleet.golden", Render(Compute(f.Name(), prev, cur), plainStyles(), 100, 40))
}

// TestRenderNoDaemon: before any sample (no daemon answers), the title
// says so instead of showing a made-up 00:00:00 UTC, and the error shows.
func TestRenderNoDaemon(t *testing.T) {
	v := Compute("http://127.0.0.1:1/metrics", Sample{}, Sample{})
	v.Err = "scraping http://127.0.0.1:1/metrics: connection refused"
	got := Render(v, NewStyles(false), 100, 10)
	if strings.Contains(got, "00:00:00") {
		t.Errorf("a time shown before any sample:\n%s", got)
	}
	for _, want := range []string{"cnbridged top  http://127.0.0.1:1/metrics  no sample yet", "error: scraping", "trying again every interval"} {
		if !strings.Contains(got, want) {
			t.Errorf("frame lacks %q:\n%s", want, got)
		}
	}
}

// TestLostWhileListeningOnly: top's LOST is loss while listening; the
// restart gap (when="not_listening") is not counted.
func TestLostWhileListeningOnly(t *testing.T) {
	const prom = `# TYPE cnbridged_messages_lost_total counter
cnbridged_messages_lost_total{idx="1",val="1",when="listening"} 3
cnbridged_messages_lost_total{idx="1",val="1",when="not_listening"} 493167
`
	s, err := ParseMetrics(strings.NewReader(prom), "web1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Lost["web1"]; got != 3 {
		t.Errorf("lost got %v, want 3", got)
	}
}
