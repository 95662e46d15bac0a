package schema_test

import (
	"testing"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// samples are native lines of every record kind, as the daemon writes
// them (README "Output" and "Process events"), with the enrichment
// variants each mapping treats apart.
var samples = []struct{ name, line string }{
	{"exec", `{"time":"2026-11-30T16:03:47.168429822Z","host":"vm","idx":1,"val":1,"seq":268841,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":1421763501602,"pid":1780,"tgid":1780},"process":{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1780:142175","pid":1780,"tgid":1780,"ppid":1779,"exe":"/usr/bin/sleep","cmdline":["sleep","0.3"],"cwd":"/tmp","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/kubepods.slice/kubepods-pod0c5e8a52_1a2b_4c3d_9e8f_0123456789ab.slice/cri-containerd-4f1e2d3c4b5a69788796a5b4c3d2e1f04f1e2d3c4b5a69788796a5b4c3d2e1f0.scope","container_id":"4f1e2d3c4b5a69788796a5b4c3d2e1f04f1e2d3c4b5a69788796a5b4c3d2e1f0","pod_uid":"0c5e8a52-1a2b-4c3d-9e8f-0123456789ab","start_time":"2026-11-30T16:03:47.154920112Z","previous_exe":"/usr/bin/dash"},"parent":{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175","pid":1779,"exe":"/usr/bin/dash","cmdline":["sh","-c","sh -c \"exec sleep 0.3\"; true"]},"ancestors":[{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175","pid":1779,"exe":"/usr/bin/dash"},{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1743:142164","pid":1743,"exe":"/usr/bin/bash"}]}`},
	{"exec exited parent", `{"time":"2026-11-30T16:03:47.168429822Z","host":"vm","idx":1,"val":1,"seq":5,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":9,"pid":1790,"tgid":1790},"process":{"entity_id":"b:1790:1","pid":1790,"tgid":1790,"ppid":1789,"exe":"/usr/bin/sleep","cmdline":["sleep","1"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/","start_time":"2026-11-30T16:03:47.100000000Z"},"parent":{"entity_id":"b:1789:1","pid":1789,"exe":"/usr/bin/dash","cmdline":["sh"],"exited":true},"ancestors":[{"entity_id":"b:1789:1","pid":1789,"exe":"/usr/bin/dash","exited":true},{"entity_id":"b:1:0","pid":1,"exe":"/sbin/init"}]}`},
	{"exec plain", `{"time":"2026-11-25T03:53:03.493979763Z","host":"web-42","idx":1,"val":1,"seq":42,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":1,"timestamp_ns":1014044163569,"pid":4711,"tgid":4711}}`},
	{"exit", `{"time":"2026-11-30T16:03:47.478494300Z","host":"vm","idx":1,"val":1,"seq":268844,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exit","cpu":0,"timestamp_ns":1422073333197,"pid":1780,"tgid":1780,"exit_code":256,"exit_signal":17,"parent_pid":1779,"parent_tgid":1779,"exit_status":1},"process":{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1780:142175","pid":1780,"tgid":1780,"ppid":1779,"exe":"/usr/bin/sleep","cmdline":["sleep","0.3"],"cwd":"/tmp","uid":1000,"euid":1000,"gid":1000,"egid":1000,"user":"ada","comm":"sleep","cgroup":"/","start_time":"2026-11-30T16:03:47.154920112Z","duration_ns":2314414502},"parent":{"entity_id":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175","pid":1779,"exe":"/usr/bin/dash","cmdline":["sh","-c","sleep 0.3"]}}`},
	{"exit killed", `{"time":"2026-11-30T16:08:32.327000000Z","host":"vm","idx":1,"val":1,"seq":9,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exit","cpu":1,"timestamp_ns":5,"pid":2360,"tgid":2359,"exit_code":139,"exit_signal":17,"parent_pid":2266,"parent_tgid":2266,"signal":"SIGSEGV","core_dumped":true,"thread":true}}`},
	{"exit unnamed signal", `{"time":"2026-11-30T16:08:32.327000000Z","host":"vm","idx":1,"val":1,"seq":10,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exit","cpu":1,"timestamp_ns":5,"pid":2361,"tgid":2361,"exit_code":40,"exit_signal":17,"signal":40}}`},
	{"fork thread", `{"time":"2026-11-30T16:08:32.117000000Z","host":"vm","idx":1,"val":1,"seq":11,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"fork","cpu":0,"timestamp_ns":6,"parent_pid":2357,"parent_tgid":2357,"child_pid":2358,"child_tgid":2357,"thread":true}}`},
	{"fork", `{"time":"2026-11-30T16:08:32.117000000Z","host":"vm","idx":1,"val":1,"seq":12,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"fork","cpu":0,"timestamp_ns":6,"parent_pid":2357,"parent_tgid":2357,"child_pid":2358,"child_tgid":2358},"process":{"entity_id":"b:2358:1","pid":2358,"tgid":2358,"ppid":2357,"exe":"/usr/bin/dash","cmdline":["sh","-c","true"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sh","cgroup":"/","start_time":"2026-11-30T16:08:32.110000000Z"},"parent":{"entity_id":"b:2357:1","pid":2357,"exe":"/usr/bin/dash","cmdline":["sh","-c","true"]}}`},
	{"uid", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":13,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"uid","cpu":0,"timestamp_ns":7,"pid":3000,"tgid":3000,"ruid":1000,"euid":0},"process":{"entity_id":"b:3000:1","pid":3000,"tgid":3000,"ppid":1,"exe":"/usr/bin/sudo","cmdline":["sudo","id"],"cwd":"/home/ada","uid":1000,"euid":1000,"gid":1000,"egid":1000,"user":"ada","comm":"sudo","cgroup":"/","start_time":"2026-11-30T16:08:32.900000000Z"}}`},
	{"gid", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":14,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"gid","cpu":0,"timestamp_ns":8,"pid":3000,"tgid":3000,"rgid":1000,"egid":0}}`},
	{"sid", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":15,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"sid","cpu":0,"timestamp_ns":9,"pid":3001,"tgid":3001}}`},
	{"comm", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":16,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"comm","cpu":0,"timestamp_ns":10,"pid":3002,"tgid":3002,"comm":"worker \"1\""}}`},
	{"ptrace attach", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":17,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"ptrace","cpu":0,"timestamp_ns":11,"pid":3003,"tgid":3003,"tracer_pid":3004,"tracer_tgid":3004}}`},
	{"ptrace detach", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":18,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"ptrace","cpu":0,"timestamp_ns":12,"pid":3003,"tgid":3003,"tracer_pid":0,"tracer_tgid":0}}`},
	{"coredump", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":19,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"coredump","cpu":0,"timestamp_ns":13,"pid":2359,"tgid":2359,"parent_pid":2266,"parent_tgid":2266}}`},
	{"ack", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":0,"ack":1,"flags":0,"len":40,"sender":0,"proc":{"event":"none","cpu":0,"timestamp_ns":0,"err":0}}`},
	{"unknown event", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":20,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"0x00001000","cpu":0,"timestamp_ns":14,"what":4096}}`},
	{"skipped", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":21,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":15,"pid":3005,"tgid":3005},"process":{"skipped":true}}`},
	{"gone", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":22,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":16,"pid":3006,"tgid":3006},"process":{"pid":3006,"gone":true}}`},
	{"stale exec", `{"time":"2026-11-30T16:08:33.000000000Z","host":"vm","idx":1,"val":1,"seq":23,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":17,"pid":3007,"tgid":3007},"process":{"entity_id":"b:3007:1","pid":3007,"tgid":3007,"ppid":1,"exe":"","cmdline":[],"cmdline_truncated":true,"cwd":"","uid":0,"euid":0,"gid":0,"egid":0,"user":"","comm":"x","cgroup":"/","start_time":"2026-11-30T16:08:32.900000000Z","stale":true,"seeded":true,"missing":["exe","cmdline","cwd"]}}`},
	{"exit_lost", `{"time":"2026-11-30T16:08:34.000000000Z","host":"vm","type":"exit_lost","process":{"entity_id":"b:3008:1","pid":3008,"tgid":3008,"ppid":1,"exe":"/usr/bin/sleep","cmdline":["sleep","9"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/","start_time":"2026-11-30T16:08:30.000000000Z"}}`},
	{"loss", `{"time":"2026-11-30T16:08:35.000000000Z","host":"web-42","type":"loss","idx":1,"val":1,"cpu":0,"sender":0,"from_seq":1200,"to_seq":1203,"lost":4}`},
	{"gap", `{"time":"2026-11-30T16:08:36.000000000Z","host":"vm","type":"gap","reason":"not_listening","from":"2026-11-30T16:00:00.000000000Z","to":"2026-11-30T16:00:02.500000000Z","pids_allocated":37,"clean_stop":true}`},
	{"tap_dropped", `{"time":"2026-11-30T16:08:37.000000000Z","host":"vm","type":"tap_dropped","dropped":12}`},
	{"message", `{"time":"2026-11-30T16:08:38.000000000Z","host":"vm","idx":3,"val":1,"seq":5,"ack":0,"flags":0,"len":4,"sender":0,"data":"AQIDBA=="}`},
	{"suppressed", `{"time":"2026-11-30T16:08:40.000000000Z","host":"ci-7","type":"suppressed","route":1,"key":{"process.uid":"1000","process.exe":"/usr/bin/cc"},"count":1234,"from":"2026-11-30T16:08:30.000000000Z","to":"2026-11-30T16:08:39.500000000Z"}`},
	{"suppressed overflow", `{"time":"2026-11-30T16:08:40.000000000Z","host":"ci-7","type":"suppressed","route":0,"key":{},"overflow":true,"count":7,"from":"2026-11-30T16:08:30.000000000Z","to":"2026-11-30T16:08:31.000000000Z"}`},
	{"life", `{"time":"2026-11-30T16:08:41.000000000Z","host":"web-1","type":"life","process":{"entity_id":"b:4717:1","pid":4717,"tgid":4717,"ppid":4716,"exe":"/usr/bin/sleep","cmdline":["sleep","0.2"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/","start_time":"2026-11-30T16:08:40.790000000Z"},"parent":{"entity_id":"b:4716:1","pid":4716,"exe":"/usr/bin/bash","cmdline":["bash"]},"life":{"start":"2026-11-30T16:08:40.790000000Z","end":"2026-11-30T16:08:41.000000000Z","duration_ns":210000789,"forked":true,"execs":[{"time":"2026-11-30T16:08:40.791000000Z","exe":"/usr/bin/dash","cmdline":["sh","-c","exec sleep 0.2"]},{"time":"2026-11-30T16:08:40.795000000Z","exe":"/usr/bin/sleep","cmdline":["sleep","0.2"]}],"events":4,"exit_code":256,"exit_status":1}}`},
	{"life open", `{"time":"2026-11-30T16:08:42.000000000Z","host":"web-1","type":"life","process":{"entity_id":"b:4720:1","pid":4720,"tgid":4720,"ppid":1,"exe":"/usr/bin/sleep","cmdline":["sleep","60"],"cwd":"/","uid":0,"euid":0,"gid":0,"egid":0,"user":"root","comm":"sleep","cgroup":"/","start_time":"2026-11-30T16:08:30.000000000Z"},"life":{"start":"2026-11-30T16:08:30.000000000Z","forked":false,"execs":[{"time":"2026-11-30T16:08:30.001000000Z","exe":"/usr/bin/sleep","cmdline":["sleep","60"]}],"events":1,"open":true}}`},
	{"unknown type", `{"time":"2026-11-30T16:08:39.000000000Z","host":"vm","type":"future_marker","lost":3,"from":"2026-11-30T16:08:30.000000000Z","to":"2026-11-30T16:08:39.000000000Z"}`},
}

func sample(t testing.TB, name string) *fields.Record {
	t.Helper()
	for _, s := range samples {
		if s.name == name {
			r, err := fields.ParseStrict([]byte(s.line))
			if err != nil {
				t.Fatalf("sample %s: %v", name, err)
			}
			return r
		}
	}
	t.Fatalf("no sample %q", name)
	return nil
}
