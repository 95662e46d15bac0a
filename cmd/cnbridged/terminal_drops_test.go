package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
)

// groupTermDrops is the group (and val) of the terminal drop test.
const groupTermDrops = 11

var droppedLine = regexp.MustCompile(`DROPPED  (\d+) rows? not shown \(queue_full (\d+)\)`)

// TestTerminalShowsDrops: run on a terminal that reads too slowly for the
// events drops rows (queue_full), and the screen says so: DROPPED lines
// whose counts add up to the sink's queue_full drops.
func TestTerminalShowsDrops(t *testing.T) {
	cntest.NeedRoot(t, rootReason)
	t.Parallel()
	id := fmt.Sprintf("%d.%d", idxTest, groupTermDrops)
	addr := freePort(t)
	cmd := exec.Command(daemonBinary(t), "run", "--set", "metrics.listen="+addr, "--set", "log.format=json",
		"--set", "tap.socket=", "--set", "state_dir=", "--set", "listener.groups="+strconv.Itoa(groupTermDrops),
		"--set", "listener.userspace_senders="+id, "--set", "routes[0].match="+id, "--set", "routes[0].enrich=false",
		"--set", "sinks.stdout.queue_size=16")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stderr cntest.SyncBuffer
	cmd.Stderr = &stderr
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		ptmx.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", stderr.String())
		}
	})
	cntest.WaitFor(t, 20*time.Second, "the daemon ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Nobody reads the terminal yet: the pty's buffer fills, the sink's
	// writes block, its queue of 16 fills, and rows are dropped.
	em := newEmitter(t)
	for i := range 5000 {
		em.send(groupTermDrops, cnmsg.Header{ID: cnmsg.ID{Idx: idxTest, Val: groupTermDrops}, Seq: uint32(i)}, []byte("slow terminal"))
	}
	p := &proc{t: t, metrics: addr}
	sel := map[string]string{"sink": "stdout", "reason": "queue_full"}
	cntest.WaitFor(t, 10*time.Second, "rows dropped", func() bool { return p.metric("cnbridged_sink_dropped_total", sel) > 0 })

	var mu sync.Mutex
	var screen bytes.Buffer
	go io.Copy(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return screen.Write(b)
	}), ptmx)
	shown := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range droppedLine.FindAllStringSubmatch(screen.String(), -1) {
			k, _ := strconv.Atoi(m[1])
			n += k
		}
		return n
	}
	cntest.WaitFor(t, 20*time.Second, "DROPPED lines adding up to the sink's queue_full drops", func() bool {
		return shown() > 0 && float64(shown()) == p.metric("cnbridged_sink_dropped_total", sel)
	})
	t.Logf("%d rows dropped, all told on the terminal", shown())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
