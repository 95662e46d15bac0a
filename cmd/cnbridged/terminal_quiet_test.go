package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestNoTerminalQueries: commands other than top never query the terminal.
// Under a pseudo-terminal that never answers (as a serial console or a dumb
// terminal emulator does not), "version" and "run --help" finish promptly
// and print no escape sequence: a query would show as raw escape codes and,
// unanswered, hold the command for the library's 5 s timeout.
func TestNoTerminalQueries(t *testing.T) {
	bin := daemonBinary(t)
	for _, args := range [][]string{{"version"}, {"run", "--help"}, {"--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), bin, args...)
			// A terminal type that termenv would query (it skips screen,
			// tmux and dumb), and no NO_COLOR that could hide the cause.
			cmd.Env = append(os.Environ(), "TERM=xterm-256color", "NO_COLOR=", "COLORTERM=")
			ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
			if err != nil {
				t.Fatalf("start under a pty: %v", err)
			}
			defer ptmx.Close()
			// Read everything the command writes, answering nothing; the
			// read ends with EIO once the command exits.
			outc := make(chan []byte, 1)
			go func() {
				var b bytes.Buffer
				io.Copy(&b, ptmx)
				outc <- b.Bytes()
			}()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// A command that queried waits the library's timeout, then
			// goes on: the escape check below catches it either way; this
			// deadline only bounds a hang.
			select {
			case err := <-done:
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatalf("wait: %v", err)
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				ptmx.Close()
				t.Fatalf("cnbridged %s still running after 30s under a terminal that does not answer queries; output so far:\n%q",
					strings.Join(args, " "), <-outc)
			}
			var out []byte
			select {
			case out = <-outc:
			case <-time.After(10 * time.Second):
				t.Fatal("pty output did not end after the command exited")
			}
			if i := bytes.IndexByte(out, 0x1b); i >= 0 {
				t.Errorf("cnbridged %s wrote an escape sequence at byte %d: %q", strings.Join(args, " "), i, out[i:min(len(out), i+16)])
			}
			if len(out) == 0 {
				t.Errorf("cnbridged %s wrote nothing", strings.Join(args, " "))
			}
		})
	}
}
