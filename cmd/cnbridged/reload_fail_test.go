package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// Groups of the cli engineer's tests.
const (
	groupReloadFail = 7
	groupReqReload  = 8
)

// TestReloadFailuresKeepRunning: a reload whose new config cannot be
// applied — a changed host, a NATS sink whose creds file is missing — keeps
// the whole old config running, logs an error line naming the key, and sets
// the reload metrics; a successful one then logs what changed.
func TestReloadFailuresKeepRunning(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	dir := t.TempDir()
	base := strings.ReplaceAll(reloadConfig(groupReloadFail, map[string]string{"a": "a.jsonl"}, "a"), "%DIR%", dir)
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	// systemd's notification socket, to see STATUS=.
	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	notes := &cntest.SyncBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			notes.Write(append(buf[:n:n], '\n'))
		}
	}()
	p := startWrapped(t, []string{"env", "NOTIFY_SOCKET=" + sock}, raceBinary(t), dir, path)
	a := filepath.Join(dir, "a.jsonl")
	em := newEmitter(t)
	seq := uint32(0)
	delivered := func(what string) {
		t.Helper()
		em.send(groupReloadFail, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupReloadFail}, Seq: seq}, []byte("probe"))
		seq++
		cntest.WaitFor(t, 10*time.Second, what, func() bool { return len(seqs(t, a)) == int(seq) })
	}
	delivered("the first message in sink a")

	failures := []struct {
		name, config, key string
	}{
		{"changed host", "host: elsewhere\n" + base, `"key":"host"`},
		{"missing creds file", strings.Replace(base, "sinks:\n", "sinks:\n  n:\n    type: nats\n    url: nats://127.0.0.1:1\n    creds_file: "+filepath.Join(dir, "absent.creds")+"\n", 1),
			`"key":"sinks.n.creds_file"`},
		{"a where that does not compile", strings.Replace(base, "    sinks: [a]\n", "    sinks: [a]\n    where: 'proc.evnt == \"exec\"'\n", 1),
			`undefined field 'evnt'`},
	}
	for i, f := range failures {
		writeAtomic(t, p.config, f.config)
		cntest.WaitFor(t, 10*time.Second, f.name+": a failed reload", func() bool {
			return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "failure"}) == float64(i+1)
		})
		if got := p.metric("cnbridged_config_last_reload_successful", nil); got != 0 {
			t.Errorf("%s: last_reload_successful got %v, want 0", f.name, got)
		}
		if !strings.Contains(p.stderr.String(), f.key) {
			t.Errorf("%s: no error line with %s in the log", f.name, f.key)
		}
		delivered(f.name + ": a message routed by the old config")
	}
	cntest.WaitFor(t, 5*time.Second, "STATUS= naming the failure to systemd", func() bool {
		return strings.Contains(notes.String(), "STATUS=reload failed, running the previous config: ")
	})
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, "reload failed") && !strings.Contains(l, `"level":"error"`) {
			t.Errorf("reload failure logged below error level: %s", l)
		}
	}

	// A good edit: a sink and a route added, a group joined.
	good := strings.Replace(base, "routes:\n", "  b:\n    type: file\n    path: "+filepath.Join(dir, "b.jsonl")+"\nroutes:\n", 1) +
		fmt.Sprintf("  - match: %q\n    sinks: [b]\n", fmt.Sprintf("%d.%d", idxTest, groupReloadFail))
	good = strings.Replace(good, fmt.Sprintf("groups: [%d]", groupReloadFail), fmt.Sprintf("groups: [%d, 9]", groupReloadFail), 1)
	writeAtomic(t, p.config, good)
	cntest.WaitFor(t, 10*time.Second, "a successful reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	if got := p.metric("cnbridged_config_last_reload_successful", nil); got != 1 {
		t.Errorf("last_reload_successful got %v, want 1", got)
	}
	var reloaded string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `"msg":"config reloaded"`) {
			reloaded = l
		}
	}
	for _, want := range []string{`"groups_joined":[9]`, `"sinks_added":["b"]`, `"routes_changed":true`, `"routes":2`} {
		if !strings.Contains(reloaded, want) {
			t.Errorf("reload log line lacks %s: %s", want, reloaded)
		}
	}
	delivered("a message after the good reload")
	p.stop()
}

// TestRequestsSurviveReload: connector requests use their NATS sink's
// connection; a reload that would change that sink is refused with the key
// named, and requests keep being answered across it and across a reload
// of other keys.
func TestRequestsSurviveReload(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	ns := natstest.Run(t)
	cfg := func(extra string) string {
		return fmt.Sprintf(`host: rq-reload
listener:
  groups: [%d]
sinks:
  bus:
    type: nats
    url: %s
%s  out:
    type: file
    path: %%DIR%%/out.jsonl
routes:
  - match: "%d.%d"
    sinks: [out]
requests:
  - subject: cn.{host}.request.1.1
    id: "1.1"
    group: 1
    timeout: 2s
    sink: bus
`, groupReqReload, ns.ClientURL(), extra, idxTest, groupReqReload)
	}
	dir := t.TempDir()
	p := startBinary(t, raceBinary(t), dir, cfg(""))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	listen := binary.NativeEndian.AppendUint32(nil, cnmsg.McastListen)
	answered := func(when string) {
		t.Helper()
		m, err := nc.Request("cn.rq-reload.request.1.1", listen, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: request: %v", when, err)
		}
		if m.Header.Get("Cn-Error") != "" {
			t.Fatalf("%s: Cn-Error %q", when, m.Header.Get("Cn-Error"))
		}
	}
	answered("before any reload")

	// Changing the requests' sink: refused, requests still answered.
	writeAtomic(t, p.config, strings.ReplaceAll(strings.Replace(cfg(""), "    url: "+ns.ClientURL()+"\n", "    url: "+ns.ClientURL()+"\n    max_in_flight: 10\n", 1), "%DIR%", dir))
	cntest.WaitFor(t, 10*time.Second, "the refused reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "failure"}) == 1
	})
	if !strings.Contains(p.stderr.String(), `"key":"sinks.bus"`) {
		t.Error(`no error line naming "sinks.bus"`)
	}
	answered("after the refused reload")

	// Another sink added: applied, requests still answered.
	writeAtomic(t, p.config, strings.ReplaceAll(cfg("  more:\n    type: file\n    path: %DIR%/more.jsonl\n"), "%DIR%", dir))
	cntest.WaitFor(t, 10*time.Second, "the applied reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "success"}) == 1
	})
	answered("after the applied reload")
	p.stop()
}

// TestReloadSubscriptionFailsWhole: a reload whose new group cannot be
// subscribed (group 1 from a daemon outside the initial PID namespace: the
// kernel never acknowledges) fails whole: group 1 is left again, the error
// names listener.groups, and the old config keeps routing.
func TestReloadSubscriptionFailsWhole(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	const group = 9
	dir := t.TempDir()
	id := fmt.Sprintf("%d.%d", idxTest, group)
	base := fmt.Sprintf("listener:\n  groups: [%d]\n  userspace_senders: [%q]\n  handshake_timeout: 500ms\nsinks:\n  a:\n    type: file\n    path: %s\nroutes:\n  - match: %q\n    sinks: [a]\n",
		group, id, filepath.Join(dir, "a.jsonl"), id)
	path := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startWrapped(t, []string{"unshare", "-p", "-f", "--mount-proc", "--kill-child"}, raceBinary(t), dir, path)
	a := filepath.Join(dir, "a.jsonl")
	em := newEmitter(t)
	em.send(group, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: group}, Seq: 0}, []byte("before"))
	cntest.WaitFor(t, 10*time.Second, "the first message", func() bool { return len(seqs(t, a)) == 1 })

	writeAtomic(t, path, strings.Replace(base, fmt.Sprintf("groups: [%d]", group), fmt.Sprintf("groups: [%d, 1]", group), 1))
	cntest.WaitFor(t, 15*time.Second, "a failed reload", func() bool {
		return p.metric("cnbridged_config_reloads_total", map[string]string{"result": "failure"}) == 1
	})
	if !strings.Contains(p.stderr.String(), `"key":"listener.groups"`) {
		t.Errorf("no error line naming listener.groups")
	}
	if !strings.Contains(p.stderr.String(), `"msg":"left group","group":1`) {
		t.Errorf("group 1 was not left again after the failed subscription")
	}
	em.send(group, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: group}, Seq: 1}, []byte("after"))
	cntest.WaitFor(t, 10*time.Second, "a message routed by the old config", func() bool { return len(seqs(t, a)) == 2 })
	if got := p.metric("cnbridged_subscribed", nil); got != 1 {
		t.Errorf("cnbridged_subscribed got %v, want 1 (the old config needs no subscription)", got)
	}
}
