package main

import (
	"bufio"
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/creack/pty"
)

// TestTapCutsToTerminalWidth: on a terminal, tap cuts each row to its
// width as run does (a long command line would wrap); piped, it does not.
func TestTapCutsToTerminalWidth(t *testing.T) {
	long := strings.Repeat("argument-", 40)
	const line = `{"time":"2026-12-07T10:00:00.000000001Z","host":"web1","idx":1,"val":1,"seq":1,"ack":0,"flags":0,"len":40,"sender":0,"proc":{"event":"exec","cpu":0,"timestamp_ns":1,"pid":4711,"tgid":4711},"process":{"pid":4711,"tgid":4711,"ppid":1,"exe":"/usr/bin/sleep","cmdline":["sleep","`
	sock := filepath.Join(t.TempDir(), "tap.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(line + long + `"]}}` + "\n"))
			c.Close()
		}
	}()

	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer ptm.Close()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 20, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	t.Setenv("NO_COLOR", "1")
	run([]string{"tap", "--socket", sock}, tty, &errOut) // ends when the server closes
	tty.Close()
	var rows []string
	sc := bufio.NewScanner(ptm)
	for sc.Scan() {
		rows = append(rows, strings.TrimRight(sc.Text(), "\r"))
	}
	if len(rows) != 2 {
		t.Fatalf("got %d lines, want the header and one row:\n%s\n%s", len(rows), strings.Join(rows, "\n"), errOut.String())
	}
	if w := utf8.RuneCountInString(rows[1]); w > 100 || !strings.HasSuffix(rows[1], "…") || !strings.Contains(rows[1], "/usr/bin/sleep") {
		t.Errorf("row is %d columns, want it cut to the terminal's 100, ending in …:\n%s", w, rows[1])
	}

	var piped bytes.Buffer
	run([]string{"tap", "--socket", sock}, &piped, &errOut)
	if !strings.Contains(piped.String(), long) {
		t.Errorf("piped, the row was cut:\n%s", piped.String())
	}
}
