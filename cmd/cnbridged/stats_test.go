package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestStatsAndCheck: `cnbridged stats` prints the table an operator reads
// when paged, from a running daemon's metrics; `cnbridged check` passes on
// this host with that daemon's config.
func TestStatsAndCheck(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	const group = 19
	id := fmt.Sprintf("%d.%d", idxTest, group)
	p := startDaemon(t, fileConfig(fmt.Sprint("[", group, "]"), `  - match: "`+id+`"
    sinks: [out]`, `  userspace_senders: ["`+id+`"]`))
	em := newEmitter(t)
	for i := 0; i < 300; i++ {
		if i == 150 {
			continue // one gap
		}
		em.send(group, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: group}, Seq: uint32(i)}, []byte("s"))
	}
	cntest.WaitFor(t, 10*time.Second, "the messages", func() bool {
		return p.metric("cnbridged_sink_messages_total", map[string]string{"sink": "out", "result": "sent"}) == 300
	})
	var out bytes.Buffer
	code := run([]string{"stats", "--url", "http://" + p.metrics + "/metrics", "--interval", "100ms"}, &out, &out)
	if code != 0 {
		t.Fatalf("stats exit %d:\n%s", code, out.String())
	}
	text := out.String()
	for _, want := range []string{
		fmt.Sprintf("%d.%d", idxTest, group), // the id row
		"299",                                // received
		"out",                                // the sink row
		"SUBSCRIBED", "UNTRUSTED",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("stats output lacks %q:\n%s", want, text)
		}
	}
	row := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, id) {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 4 || f[1] != "299" || f[3] != "1" {
		t.Errorf("id row %q: want received 299 and lost 1", row)
	}

	// check does what run would: while the daemon runs, its file sink is
	// locked, and check names the daemon's pid; once it has stopped,
	// check passes. (The tap socket and restart trace are the host's
	// defaults in this config: not this test's.)
	checkArgs := []string{"check", "--config", p.config, "--set", "metrics.listen=", "--set", "tap.socket=", "--set", "state_dir="}
	out.Reset()
	code = run(checkArgs, &out, &out)
	if want := fmt.Sprintf("is locked by pid %d", p.cmd.Process.Pid); code != 1 || !strings.Contains(out.String(), want) {
		t.Errorf("check while the daemon runs: exit %d, want 1 with %q:\n%s", code, want, out.String())
	}
	p.stop()
	out.Reset()
	code = run(checkArgs, &out, &out)
	if code != 0 || strings.Contains(out.String(), "FAIL") {
		t.Errorf("check exit %d:\n%s", code, out.String())
	}
}
