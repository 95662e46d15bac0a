package schema_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/schema"
)

// flatten turns a JSON document into dotted paths: objects nest with
// ".", arrays of objects with "[i]", arrays of scalars stay []any.
func flatten(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, doc)
	}
	out := map[string]any{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		join := func(k string) string {
			if p == "" {
				return k
			}
			return p + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(join(k), e)
			}
		case []any:
			if len(v) > 0 {
				if _, ok := v[0].(map[string]any); ok {
					for i, e := range v {
						walk(fmt.Sprintf("%s[%d]", p, i), e)
					}
					return
				}
			}
			out[p] = v
		default:
			out[p] = v
		}
	}
	walk("", v)
	return out
}

type mappingCase struct {
	sample string
	want   map[string]any // paths that must have these values
	absent []string       // paths that must not be there
}

func runMapping(t *testing.T, cases []mappingCase, enc func(t *testing.T, name string) []byte) {
	for _, tc := range cases {
		t.Run(tc.sample, func(t *testing.T) {
			doc := enc(t, tc.sample)
			got := flatten(t, doc)
			sub := map[string]any{}
			for k := range tc.want {
				if v, ok := got[k]; ok {
					sub[k] = v
				}
			}
			if diff := cmp.Diff(tc.want, sub); diff != "" {
				t.Errorf("(-want +got):\n%s\ndocument: %s", diff, doc)
			}
			for _, k := range tc.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %v, want it absent\ndocument: %s", k, v, doc)
				}
			}
		})
	}
}

func strs(s ...string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestECSMapping(t *testing.T) {
	cases := []mappingCase{
		{"exec", map[string]any{
			"@timestamp": "2026-11-30T16:03:47.168429822Z", "ecs.version": "9.4.0",
			"event.kind": "event", "event.category": strs("process"), "event.type": strs("start"),
			"event.action": "exec", "event.sequence": 268841.0, "event.module": "cnbridged",
			"host.name":          "vm",
			"process.entity_id":  "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1780:142175",
			"process.pid":        1780.0,
			"process.name":       "sleep",
			"process.executable": "/usr/bin/sleep", "process.args": strs("sleep", "0.3"), "process.args_count": 2.0,
			"process.command_line": "sleep 0.3", "process.working_directory": "/tmp",
			"process.start":   "2026-11-30T16:03:47.154920112Z",
			"process.user.id": "0", "process.user.name": "root", "process.real_user.id": "0", "process.real_user.name": "root",
			"process.group.id": "0", "process.real_group.id": "0",
			"process.previous[0].executable": "/usr/bin/dash",
			"process.parent.entity_id":       "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175",
			"process.parent.pid":             1779.0, "process.parent.executable": "/usr/bin/dash", "process.parent.name": "dash",
			"process.parent.args":         strs("sh", "-c", `sh -c "exec sleep 0.3"; true`),
			"process.parent.args_count":   3.0,
			"process.parent.command_line": `sh -c sh -c "exec sleep 0.3"; true`,
			"container.id":                "4f1e2d3c4b5a69788796a5b4c3d2e1f04f1e2d3c4b5a69788796a5b4c3d2e1f0",
			"orchestrator.type":           "kubernetes", "orchestrator.resource.type": "pod",
			"orchestrator.resource.id":   "0c5e8a52-1a2b-4c3d-9e8f-0123456789ab",
			"cnbridged.proc.cpu":         0.0,
			"cnbridged.ancestors[1].exe": "/usr/bin/bash",
		}, []string{"process.exit_code", "process.end", "process.thread.id", "event.reason", "message"}},
		{"exec exited parent", map[string]any{"process.parent.pid": 1789.0, "cnbridged.parent.exited": true,
			"cnbridged.ancestors[0].exited": true}, []string{"cnbridged.ancestors[1].exited"}},
		{"exec plain", map[string]any{"event.type": strs("start"), "process.pid": 4711.0, "cnbridged.proc.timestamp_ns": 1014044163569.0},
			[]string{"process.entity_id", "process.executable", "process.parent.pid", "process.user.id", "container.id"}},
		{"exit", map[string]any{
			"event.type": strs("end"), "event.action": "exit", "event.reason": "exit status 1",
			"process.exit_code": 1.0, "process.end": "2026-11-30T16:03:47.478494300Z", "process.uptime": 2.0,
			"process.user.id": "1000", "process.user.name": "ada", "process.real_user.name": "ada",
			"cnbridged.process.duration_ns": 2314414502.0,
		}, []string{"process.previous", "orchestrator.type"}},
		{"exit killed", map[string]any{
			"process.pid": 2359.0, "process.thread.id": 2360.0, "process.exit_code": 139.0,
			"event.reason": "killed by SIGSEGV (core dumped)", "process.parent.pid": 2266.0,
			"cnbridged.proc.signal": "SIGSEGV", "cnbridged.proc.core_dumped": true,
		}, nil},
		{"exit unnamed signal", map[string]any{"process.exit_code": 168.0, "event.reason": "killed by signal 40", "cnbridged.proc.signal": "40"}, nil},
		{"fork thread", map[string]any{
			"event.type": strs("info"), "event.action": "fork", "process.pid": 2357.0, "process.thread.id": 2358.0,
			"process.parent.pid": 2357.0,
		}, []string{"process.parent.thread.id"}},
		{"fork", map[string]any{"process.pid": 2358.0, "process.name": "sh", "process.parent.pid": 2357.0, "process.parent.name": "dash"},
			[]string{"process.thread.id"}},
		{"uid", map[string]any{
			"event.type": strs("change"), "process.user.id": "0", "process.real_user.id": "1000", "process.real_user.name": "ada",
		}, []string{"process.user.name"}},
		{"gid", map[string]any{"event.type": strs("change"), "process.group.id": "0", "process.real_group.id": "1000"}, []string{"process.user.id"}},
		{"sid", map[string]any{"event.type": strs("change"), "event.action": "sid", "process.pid": 3001.0}, nil},
		{"comm", map[string]any{"event.type": strs("change"), "process.name": `worker "1"`}, nil},
		{"ptrace attach", map[string]any{"event.type": strs("info"), "cnbridged.proc.tracer_pid": 3004.0, "cnbridged.proc.tracer_tgid": 3004.0}, nil},
		{"coredump", map[string]any{"event.type": strs("info"), "event.action": "coredump", "process.parent.pid": 2266.0}, nil},
		{"ack", map[string]any{"event.action": "none", "cnbridged.proc.err": 0.0}, []string{"process.pid"}},
		{"unknown event", map[string]any{"event.type": strs("info"), "cnbridged.proc.what": 4096.0}, []string{"process.pid"}},
		{"skipped", map[string]any{"process.pid": 3005.0, "cnbridged.process.skipped": true}, []string{"process.entity_id"}},
		{"gone", map[string]any{"process.pid": 3006.0, "cnbridged.process.gone": true}, nil},
		{"stale exec", map[string]any{
			"cnbridged.process.stale": true, "cnbridged.process.seeded": true, "cnbridged.process.cmdline_truncated": true,
			"cnbridged.process.missing": strs("exe", "cmdline", "cwd"),
		}, []string{"process.executable", "process.args", "process.args_count", "process.working_directory", "process.real_user.name"}},
		{"exit_lost", map[string]any{
			"event.kind": "event", "event.type": strs("end"), "event.action": "exit_lost",
			"event.reason": "the exit event was lost; the process was found gone",
			"process.pid":  3008.0, "process.executable": "/usr/bin/sleep",
		}, []string{"process.exit_code", "process.end"}},
		{"loss", map[string]any{
			"event.kind": "pipeline_error", "event.action": "loss", "host.name": "web-42",
			"message":             "4 connector messages lost (idx 1 val 1 cpu 0 seq 1200-1203)",
			"cnbridged.loss.lost": 4.0, "cnbridged.loss.from_seq": 1200.0, "cnbridged.loss.to_seq": 1203.0, "cnbridged.loss.cpu": 0.0,
		}, []string{"process.pid"}},
		{"gap", map[string]any{
			"event.kind": "pipeline_error", "event.action": "gap", "event.reason": "not_listening",
			"event.start": "2026-11-30T16:00:00.000000000Z", "event.end": "2026-11-30T16:00:02.500000000Z", "event.duration": 2.5e9,
			"cnbridged.gap.pids_allocated": 37.0, "cnbridged.gap.clean_stop": true,
		}, []string{"cnbridged.gap.pids_wrapped"}},
		{"tap_dropped", map[string]any{"event.kind": "pipeline_error", "cnbridged.tap.dropped": 12.0, "message": "12 lines not sent to a slow tap client"}, nil},
		{"message", map[string]any{"event.kind": "event", "event.action": "message", "cnbridged.connector.idx": 3.0, "cnbridged.connector.data": "AQIDBA==", "event.sequence": 5.0},
			[]string{"event.category", "process.pid"}},
		{"unknown type", map[string]any{"event.action": "future_marker", "cnbridged.marker.type": "future_marker", "cnbridged.marker.lost": 3.0}, nil},
		{"suppressed", map[string]any{
			"event.kind": "metric", "event.type": strs("info"), "event.action": "suppressed",
			"event.start": "2026-11-30T16:08:30.000000000Z", "event.end": "2026-11-30T16:08:39.500000000Z", "event.duration": 9.5e9,
			"message":                    "1234 records not sent by route 1's rate limit",
			"cnbridged.suppressed.count": 1234.0, "cnbridged.suppressed.route": 1.0,
			"cnbridged.suppressed.key.process.exe": "/usr/bin/cc", "cnbridged.suppressed.key.process.uid": "1000",
		}, []string{"process.pid", "cnbridged.suppressed.overflow"}},
		{"suppressed overflow", map[string]any{"cnbridged.suppressed.overflow": true, "cnbridged.suppressed.count": 7.0,
			"message": "7 records not sent by route 0's rate limit (keys beyond max_keys)"}, nil},
		{"life", map[string]any{
			"event.kind": "event", "event.type": strs("end"), "event.action": "life", "event.reason": "exit status 1",
			"process.pid": 4717.0, "process.executable": "/usr/bin/sleep", "process.start": "2026-11-30T16:08:40.790000000Z",
			"process.end": "2026-11-30T16:08:41.000000000Z", "process.exit_code": 1.0, "process.uptime": 0.0,
			"process.previous[0].executable": "/usr/bin/dash", "process.previous[0].args": strs("sh", "-c", "exec sleep 0.2"),
			"process.parent.pid":    4716.0,
			"cnbridged.life.events": 4.0, "cnbridged.life.forked": true, "cnbridged.life.execs[1].exe": "/usr/bin/sleep",
			"cnbridged.life.duration_ns": 210000789.0,
		}, []string{"process.previous[1].executable"}},
		{"life open", map[string]any{"event.type": strs("info"), "cnbridged.life.open": true, "process.pid": 4720.0},
			[]string{"process.end", "process.exit_code", "event.reason", "process.previous"}},
	}
	runMapping(t, cases, func(t *testing.T, name string) []byte { return schema.AppendECS(nil, sample(t, name)) })
}

func TestOCSFMapping(t *testing.T) {
	cases := []mappingCase{
		{"exec", map[string]any{
			"class_uid": 1007.0, "category_uid": 1.0, "activity_id": 1.0, "activity_name": "Launch",
			"type_uid": 100701.0, "type_name": "Process Activity: Launch", "launch_type_id": 3.0, "launch_type": "Exec",
			"severity_id": 1.0, "status_id": 1.0, "time": 1796054627168.0,
			"metadata.version": "1.8.0", "metadata.product.name": "cnbridged", "metadata.product.vendor_name": "cnbridged",
			"metadata.product.version": "1.2.3", "metadata.event_code": "exec", "metadata.profiles": strs("container"),
			"device.hostname": "vm",
			"process.pid":     1780.0, "process.uid": "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1780:142175", "process.name": "sleep",
			"process.cmd_line": "sleep 0.3", "process.working_directory": "/tmp", "process.created_time": 1796054627154.0,
			"process.file.path": "/usr/bin/sleep", "process.file.name": "sleep",
			"process.user.uid": "0", "process.user.name": "root",
			"process.container.uid":            "4f1e2d3c4b5a69788796a5b4c3d2e1f04f1e2d3c4b5a69788796a5b4c3d2e1f0",
			"process.container.pod_uuid":       "0c5e8a52-1a2b-4c3d-9e8f-0123456789ab",
			"process.parent_process.pid":       1779.0,
			"process.parent_process.uid":       "2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175",
			"process.parent_process.cmd_line":  `sh -c sh -c "exec sleep 0.3"; true`,
			"process.parent_process.file.path": "/usr/bin/dash",
			"process.ancestry[0].pid":          1779.0, "process.ancestry[1].path": "/usr/bin/bash",
			"process.lineage":               strs("/usr/bin/bash", "/usr/bin/dash", "/usr/bin/sleep"),
			"actor.process.pid":             1779.0,
			"unmapped.seq":                  268841.0,
			"unmapped.process.previous_exe": "/usr/bin/dash",
		}, []string{"exit_code", "process.terminated_time", "count"}},
		{"exec exited parent", map[string]any{"process.parent_process.pid": 1789.0, "unmapped.parent.exited": true,
			"unmapped.ancestors[0].exited": true, "unmapped.ancestors[1].pid": 1.0}, nil},
		{"exec plain", map[string]any{"activity_id": 1.0, "process.pid": 4711.0, "actor.process.pid": 4711.0},
			[]string{"process.uid", "process.file.path", "process.parent_process", "metadata.profiles"}},
		{"exit", map[string]any{
			"activity_id": 2.0, "activity_name": "Terminate", "type_uid": 100702.0, "exit_code": 1.0,
			"process.terminated_time": 1796054627478.0, "actor.process.pid": 1780.0,
			"process.lineage": strs("/usr/bin/dash", "/usr/bin/sleep"), "unmapped.proc.exit_code": 256.0,
		}, []string{"launch_type_id"}},
		{"exit killed", map[string]any{"exit_code": 139.0, "process.pid": 2359.0, "process.ptid": 2360.0, "unmapped.proc.signal": "SIGSEGV"}, nil},
		{"fork thread", map[string]any{"activity_id": 1.0, "launch_type_id": 2.0, "launch_type": "Fork", "process.pid": 2357.0, "process.ptid": 2358.0, "actor.process.pid": 2357.0}, nil},
		{"uid", map[string]any{"activity_id": 5.0, "activity_name": "Set User ID", "type_uid": 100705.0, "process.user.uid": "0", "unmapped.proc.ruid": 1000.0},
			[]string{"process.user.name"}},
		{"gid", map[string]any{"activity_id": 99.0, "activity_name": "gid", "type_uid": 100799.0, "type_name": "Process Activity: Other", "unmapped.proc.egid": 0.0}, nil},
		{"sid", map[string]any{"activity_id": 99.0, "activity_name": "sid"}, nil},
		{"comm", map[string]any{"activity_id": 99.0, "activity_name": "comm", "process.name": `worker "1"`}, nil},
		{"ptrace attach", map[string]any{"activity_id": 3.0, "activity_name": "Open", "process.pid": 3003.0, "actor.process.pid": 3004.0}, nil},
		{"ptrace detach", map[string]any{"activity_id": 99.0, "actor.process.pid": 3003.0}, nil},
		{"coredump", map[string]any{"activity_id": 99.0, "activity_name": "coredump", "process.parent_process.pid": 2266.0}, nil},
		{"ack", map[string]any{"class_uid": 0.0, "activity_id": 99.0, "activity_name": "none", "unmapped.proc.err": 0.0}, []string{"process"}},
		{"unknown event", map[string]any{"class_uid": 0.0, "unmapped.proc.what": 4096.0}, nil},
		{"stale exec", map[string]any{"unmapped.process.stale": true, "unmapped.process.missing": strs("exe", "cmdline", "cwd")},
			[]string{"process.file.path", "process.cmd_line", "process.working_directory"}},
		{"exit_lost", map[string]any{
			"class_uid": 1007.0, "activity_id": 2.0, "status_id": 0.0, "status": "Unknown",
			"status_detail": "the exit event was lost; the process was found gone",
			"process.pid":   3008.0, "process.file.path": "/usr/bin/sleep", "actor.process.pid": 3008.0,
		}, []string{"exit_code"}},
		{"loss", map[string]any{
			"class_uid": 0.0, "category_uid": 0.0, "activity_id": 99.0, "activity_name": "loss", "type_uid": 99.0,
			"severity_id": 3.0, "count": 4.0, "message": "4 connector messages lost", "metadata.profiles": strs("host"),
			"device.hostname": "web-42", "unmapped.from_seq": 1200.0, "unmapped.to_seq": 1203.0, "unmapped.lost": 4.0,
		}, nil},
		{"gap", map[string]any{
			"class_uid": 0.0, "activity_name": "gap", "start_time": 1796054400000.0, "end_time": 1796054402500.0, "duration": 2500.0,
			"unmapped.pids_allocated": 37.0, "unmapped.reason": "not_listening",
		}, nil},
		{"tap_dropped", map[string]any{"class_uid": 0.0, "severity_id": 2.0, "count": 12.0}, nil},
		{"message", map[string]any{"class_uid": 0.0, "activity_name": "message", "unmapped.data": "AQIDBA=="}, nil},
		{"unknown type", map[string]any{"class_uid": 0.0, "activity_name": "future_marker", "unmapped.type": "future_marker", "unmapped.lost": 3.0}, nil},
		{"suppressed", map[string]any{
			"class_uid": 0.0, "activity_id": 99.0, "activity_name": "suppressed", "severity_id": 1.0, "count": 1234.0,
			"start_time": 1796054910000.0, "end_time": 1796054919500.0, "duration": 9500.0,
			"unmapped.route": 1.0, "unmapped.key.process.exe": "/usr/bin/cc", "metadata.profiles": strs("host"),
		}, nil},
		{"life", map[string]any{
			"class_uid": 1007.0, "activity_id": 2.0, "activity_name": "Terminate", "exit_code": 1.0,
			"process.pid": 4717.0, "process.created_time": 1796054920790.0, "process.terminated_time": 1796054921000.0,
			"actor.process.pid": 4717.0, "unmapped.life.events": 4.0, "unmapped.life.execs[0].exe": "/usr/bin/dash",
		}, nil},
		{"life open", map[string]any{"class_uid": 1007.0, "activity_id": 99.0, "activity_name": "life", "unmapped.life.open": true},
			[]string{"exit_code", "process.terminated_time"}},
	}
	runMapping(t, cases, func(t *testing.T, name string) []byte {
		return schema.AppendOCSF(nil, sample(t, name), schema.Product{Version: "1.2.3"})
	})
}

// TestAppendKeepsDst: the encoders append to what dst holds.
func TestAppendKeepsDst(t *testing.T) {
	r := sample(t, "exec")
	for name, enc := range map[string]func([]byte) []byte{
		"ecs":  func(b []byte) []byte { return schema.AppendECS(b, r) },
		"ocsf": func(b []byte) []byte { return schema.AppendOCSF(b, r, schema.Product{}) },
	} {
		alone := enc(nil)
		got := enc([]byte("prefix"))
		if string(got) != "prefix"+string(alone) {
			t.Errorf("%s: appending to a prefix gave %q", name, got[:min(len(got), 40)])
		}
	}
}

func TestParseName(t *testing.T) {
	for in, want := range map[string]schema.Name{"": schema.Native, "native": schema.Native, "ecs": schema.ECS, "ocsf": schema.OCSF} {
		if got, err := schema.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := schema.Parse("ECS"); err == nil || err.Error() != `"ECS" is not native, ecs or ocsf` {
		t.Errorf("Parse(ECS) error = %v", err)
	}
}
