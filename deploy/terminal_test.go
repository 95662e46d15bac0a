package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// runBuiltin runs the daemon on its built-in default config (no config
// file) with stdout on a pseudo-terminal (tty) or a pipe, starts /bin/true
// until until(output) holds, and returns what the daemon wrote to stdout.
func runBuiltin(t *testing.T, tty bool, env []string, until func(string) bool, args ...string) string {
	t.Helper()
	if exists("/etc/cnbridged/cnbridged.yaml") {
		t.Skip("/etc/cnbridged/cnbridged.yaml exists: the daemon would read it instead of its built-in default")
	}
	// The state file and the tap socket in a temp dir: the built-in
	// defaults (/var/lib/cnbridged, /run/cnbridged) are the host's.
	dir := t.TempDir()
	args = append([]string{"--no-watch", "--set", fmt.Sprintf("metrics.listen=127.0.0.1:%d", natstest.FreePort(t)),
		"--set", "state_dir=" + filepath.Join(dir, "state"), "--set", "tap.socket=" + filepath.Join(dir, "tap.sock")}, args...)
	cmd := exec.Command(buildStatic(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var logs, out cntest.SyncBuffer
	cmd.Stderr = &logs
	if tty {
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
		if err != nil {
			t.Fatalf("start under a pty: %v", err)
		}
		defer ptmx.Close()
		// Reading ends with EIO once the daemon exits. Answer the
		// terminal queries a real terminal answers (bubbletea's init
		// asks for the background colour and the cursor position;
		// unanswered, it waits 5 s).
		go answerQueries(ptmx, &out)
	} else {
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for !until(out.String()) {
		select {
		case err := <-done:
			t.Fatalf("daemon exited: %v\nstdout:\n%s\nlogs:\n%s", err, out.String(), logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching output within 30s\nstdout:\n%s\nlogs:\n%s", out.String(), logs.String())
		}
		exec.Command("/bin/true").Run()
		time.Sleep(100 * time.Millisecond)
	}
	return out.String()
}

// answerQueries copies the terminal's output into out and answers the
// background colour (OSC 11) and cursor position (DSR) queries in it.
func answerQueries(tty io.ReadWriter, out io.Writer) {
	var seen []byte
	answered := map[string]bool{}
	answers := []struct{ query, reply string }{
		{"\x1b]11;?", "\x1b]11;rgb:0000/0000/0000\x1b\\"},
		{"\x1b[6n", "\x1b[1;1R"},
	}
	buf := make([]byte, 4096)
	for {
		n, err := tty.Read(buf)
		if n > 0 {
			out.Write(buf[:n])
			seen = append(seen, buf[:n]...)
			for _, a := range answers {
				if !answered[a.query] && bytes.Contains(seen, []byte(a.query)) {
					answered[a.query] = true
					tty.Write([]byte(a.reply))
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// sgrRE matches an SGR (colour) escape sequence.
var sgrRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// execOfTrue reports whether a text row shows an exec of true, enriched
// with its executable's path.
func execOfTrue(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "exec") && strings.Contains(l, "bin/true") {
			return true
		}
	}
	return false
}

// jsonExec reports whether out holds a JSON line of an exec event.
func jsonExec(out string) bool { return strings.Contains(out, `"event":"exec"`) }

// TestTerminalDefault: the first command of README (cnbridged with no
// config) shows aligned, coloured text with the executable and arguments on
// a terminal; NO_COLOR turns the colours off; --format json and a pipe get
// JSON lines.
func TestTerminalDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon four times, under a pty and a pipe: the full run (go test without -short) has it")
	}
	cntest.NeedRoot(t, rootReason)

	t.Run("terminal: text, enriched, coloured", func(t *testing.T) {
		out := runBuiltin(t, true, []string{"NO_COLOR="}, execOfTrue)
		if !strings.Contains(out, "TIME         EVENT") {
			t.Errorf("no column header on the terminal:\n%s", out)
		}
		if strings.Contains(out, `{"time"`) {
			t.Errorf("JSON on the terminal:\n%s", out)
		}
		if !sgrRE.MatchString(out) {
			t.Errorf("no colours on the terminal without NO_COLOR:\n%q", out)
		}
	})
	t.Run("terminal with NO_COLOR: no colours", func(t *testing.T) {
		out := runBuiltin(t, true, []string{"NO_COLOR=1"}, execOfTrue)
		if m := sgrRE.FindString(out); m != "" {
			t.Errorf("colour sequence %q despite NO_COLOR:\n%q", m, out)
		}
	})
	t.Run("terminal with --format json: JSON lines", func(t *testing.T) {
		out := runBuiltin(t, true, nil, jsonExec, "--format", "json")
		if strings.Contains(out, "TIME ") || strings.Contains(out, `"process":`) {
			t.Errorf("--format json on a terminal wrote text or enriched lines:\n%s", out)
		}
	})
	t.Run("piped: JSON lines", func(t *testing.T) {
		out := runBuiltin(t, false, nil, jsonExec)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, "{") {
				t.Errorf("piped output has a non-JSON line %q", l)
				break
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("escape sequences in piped output: %q", out)
		}
	})
}

// TestFormatFlagRejected: a --format other than json or text is a usage
// error (exit 2) naming what is accepted, before any config is read.
func TestFormatFlagRejected(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), buildStatic(t), "run", "--format", "yaml").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"yaml" is not json or text`) {
		t.Errorf("cnbridged run --format yaml: %v\n%s\nwant exit 2 naming json and text", err, out)
	}
}
