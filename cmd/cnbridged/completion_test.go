package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestFlagValueCompletion: shell completion offers each fixed-value flag's
// values (through cobra's __complete, what the bash/zsh/fish scripts
// call), and every value offered is one the command accepts.
func TestFlagValueCompletion(t *testing.T) {
	values := flagValues()
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"run", "--format"}, "format"},
		{[]string{"--format"}, "format"},
		{[]string{"tap", "--event"}, "event"},
		{[]string{"run", "--log-level"}, "log-level"},
		{[]string{"check", "--log-level"}, "log-level"},
		{[]string{"validate", "--log-level"}, "log-level"},
	} {
		var out bytes.Buffer
		run(append(append([]string{"__complete"}, tt.args...), ""), &out, io.Discard)
		var got []string
		for _, l := range strings.Split(out.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		if strings.Join(got, " ") != strings.Join(values[tt.flag], " ") {
			t.Errorf("cnbridged __complete %s '': got %q, want %q", strings.Join(tt.args, " "), got, values[tt.flag])
		}
	}
	for _, v := range values["log-level"] {
		var out bytes.Buffer
		if code := run([]string{"validate", "--log-level", v}, &out, &out); code != 0 {
			t.Errorf("validate --log-level %s: exit %d\n%s", v, code, out.String())
		}
	}
	for _, v := range values["format"] {
		var f formatFlag
		if err := f.Set(v); err != nil {
			t.Errorf("--format %s: %v", v, err)
		}
	}
	usage := newRootCmd(io.Discard, io.Discard)
	tap, _, err := usage.Find([]string{"tap"})
	if err != nil {
		t.Fatal(err)
	}
	help := tap.Flags().Lookup("event").Usage
	for _, v := range values["event"] {
		if !strings.Contains(help, v) {
			t.Errorf("tap --event's help %q does not name %s", help, v)
		}
	}
}
