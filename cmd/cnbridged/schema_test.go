package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/otlptest"
	"github.com/cnbridged/cnbridged/internal/schema/schematest"
)

// TestSleepInEverySchema: `sleep 0.1` run while the daemon enriches
// process events into three sinks reaches them as an ECS document, an
// OCSF Process Activity event and an OTLP log record (to the Collector's
// own OTLP receiver), exec and exit alike, each valid against its
// schema's official definitions.
func TestSleepInEverySchema(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	rec := &otlptest.Recorder{}
	rcv, err := otlptest.Start(otlptest.GRPC, "", rec.Consume)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Stop()
	p := startDaemon(t, fmt.Sprintf(`
listener:
  groups: [1]
  receive_buffer_bytes: 33554432
sinks:
  ecs:
    type: file
    path: %%DIR%%/out/ecs.jsonl
    schema: ecs
  ocsf:
    type: file
    path: %%DIR%%/out/ocsf.jsonl
    schema: ocsf
  collector:
    type: otlp
    protocol: grpc
    endpoint: %s
routes:
  - match: "1.1"
    events: [exec, exit]
    enrich: true
    sinks: [ecs, ocsf, collector]
`, rcv.Endpoint()))
	cmd := exec.Command("sleep", "0.1")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := float64(cmd.Process.Pid)
	exe, _ := filepath.EvalSymlinks(cmd.Path)

	// ECS: the exec (event.type start) and exit (end) of the pid.
	var ecsExec, ecsExit map[string]any
	cntest.WaitFor(t, 10*time.Second, "the ECS exec and exit of sleep", func() bool {
		for _, d := range readDocs(t, filepath.Join(p.dir, "out/ecs.jsonl")) {
			if dig(d, "process.pid") != pid {
				continue
			}
			switch dig(d, "event.action") {
			case "exec":
				ecsExec = d
			case "exit":
				ecsExit = d
			}
		}
		return ecsExec != nil && ecsExit != nil
	})
	for _, c := range []struct {
		path string
		want any
	}{
		{"event.kind", "event"}, {"event.type", []any{"start"}}, {"process.executable", exe},
		{"process.args", []any{"sleep", "0.1"}}, {"process.command_line", "sleep 0.1"},
		{"process.parent.pid", float64(os.Getpid())}, {"ecs.version", "9.4.0"},
	} {
		if got := dig(ecsExec, c.path); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("ECS exec %s = %v, want %v", c.path, got, c.want)
		}
	}
	if dig(ecsExit, "process.exit_code") != 0.0 || fmt.Sprint(dig(ecsExit, "event.type")) != "[end]" {
		t.Errorf("ECS exit: exit_code %v, event.type %v", dig(ecsExit, "process.exit_code"), dig(ecsExit, "event.type"))
	}
	for _, d := range []map[string]any{ecsExec, ecsExit} {
		b, _ := json.Marshal(d)
		for _, e := range schematest.ValidateECS(b) {
			t.Errorf("ECS %v: %s", dig(d, "event.action"), e)
		}
	}

	// OCSF: Process Activity Launch and Terminate of the pid.
	var launch, terminate map[string]any
	cntest.WaitFor(t, 10*time.Second, "the OCSF Launch and Terminate of sleep", func() bool {
		for _, d := range readDocs(t, filepath.Join(p.dir, "out/ocsf.jsonl")) {
			if dig(d, "process.pid") != pid || dig(d, "class_uid") != 1007.0 {
				continue
			}
			switch dig(d, "activity_id") {
			case 1.0:
				launch = d
			case 2.0:
				terminate = d
			}
		}
		return launch != nil && terminate != nil
	})
	if dig(launch, "process.file.path") != exe || dig(launch, "process.cmd_line") != "sleep 0.1" || dig(launch, "type_uid") != 100701.0 {
		t.Errorf("OCSF launch: file.path %v, cmd_line %v, type_uid %v", dig(launch, "process.file.path"), dig(launch, "process.cmd_line"), dig(launch, "type_uid"))
	}
	if dig(terminate, "exit_code") != 0.0 || dig(terminate, "type_uid") != 100702.0 {
		t.Errorf("OCSF terminate: exit_code %v, type_uid %v", dig(terminate, "exit_code"), dig(terminate, "type_uid"))
	}
	for _, d := range []map[string]any{launch, terminate} {
		b, _ := json.Marshal(d)
		errs, _ := schematest.ValidateOCSF(b)
		for _, e := range errs {
			t.Errorf("OCSF activity %v: %s", dig(d, "activity_id"), e)
		}
	}

	// OTLP: a LogRecord for the exec and one for the exit.
	var otExec, otExit plog.LogRecord
	var res pcommon.Resource
	cntest.WaitFor(t, 10*time.Second, "the OTLP exec and exit of sleep", func() bool {
		found := 0
		rec.Each(func(r pcommon.Resource, lr plog.LogRecord) {
			if v, ok := lr.Attributes().Get("process.pid"); !ok || float64(v.Int()) != pid {
				return
			}
			switch lr.EventName() {
			case "cnbridged.process.exec":
				otExec, res = lr, r
				found |= 1
			case "cnbridged.process.exit":
				otExit = lr
				found |= 2
			}
		})
		return found == 3
	})
	if v, _ := otExec.Attributes().Get("process.executable.path"); v.Str() != exe {
		t.Errorf("OTLP exec process.executable.path %q, want %q", v.Str(), exe)
	}
	if v, _ := otExec.Attributes().Get("process.command_args"); fmt.Sprint(v.AsRaw()) != "[sleep 0.1]" {
		t.Errorf("OTLP exec process.command_args %v", v.AsRaw())
	}
	if v, _ := otExit.Attributes().Get("process.exit.code"); v.Int() != 0 || otExit.SeverityText() != "INFO" {
		t.Errorf("OTLP exit process.exit.code %v, severity %q", v.AsRaw(), otExit.SeverityText())
	}
	if body := otExec.Body().Map().AsRaw(); fmt.Sprint(dig(body, "proc.event")) != "exec" {
		t.Errorf("OTLP exec body is not the native line: %v", body)
	}
	if v, _ := res.Attributes().Get("service.name"); v.Str() != "cnbridged" {
		t.Errorf("resource service.name %q", v.Str())
	}
	for _, m := range []pcommon.Map{otExec.Attributes(), otExit.Attributes(), res.Attributes()} {
		for _, e := range schematest.ValidateSemconv(m.AsRaw()) {
			t.Errorf("OTLP: %s", e)
		}
	}
	p.stop()
}

// readDocs reads the complete JSON lines of a file sink.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil
	}
	for raw := range bytes.Lines(b) {
		var d map[string]any
		if err := json.Unmarshal(bytes.TrimSuffix(raw, []byte{'\n'}), &d); err != nil {
			t.Fatalf("%s: not JSON: %v: %q", path, err, raw)
		}
		out = append(out, d)
	}
	return out
}

// dig returns the member at a dotted path, or nil.
func dig(m map[string]any, path string) any {
	var v any = m
	for k := range strings.SplitSeq(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}
