package sinks

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Each sink type's config: its defaults, and Validate naming each key. A
// new key of a sink type is added here and in its *_config.go only.

func TestStdoutConfig(t *testing.T) {
	var c StdoutConfig
	c.SetDefaults(DaemonKeys{})
	if c.Format != FormatJSON {
		t.Errorf("default format got %q, want json", c.Format)
	}
	c.Format = "xml"
	if err := c.Validate(DaemonKeys{}); err == nil || err.Error() != `format: "xml" is not json or text` {
		t.Errorf("Validate got %v, want the format named", err)
	}
}

func TestFileSinkConfig(t *testing.T) {
	var c FileSinkConfig
	c.SetDefaults(DaemonKeys{})
	want := FileSinkConfig{Mode: 0o640, FlushInterval: time.Second, MaxFiles: 5}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if size, bytes := c.QueueDefaults(); size != DefaultQueueSize || bytes != DefaultQueueMaxBytes {
		t.Errorf("queue defaults got %d, %d", size, bytes)
	}
	c.MaxFiles, c.MaxSizeBytes, c.FlushInterval = 0, -1, -time.Second
	got := flattenErr(c.Validate(DaemonKeys{}))
	wantErrs := []string{
		"path: required for a file sink",
		"flush_interval: -1s: must be positive",
		"max_size_bytes: -1: must not be negative",
		"max_files: 0: must be at least 1",
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
	c = FileSinkConfig{Path: "/x", Mode: 0o600, OnError: OnErrorExit}
	if fc := c.FileConfig(); fc.Path != "/x" || fc.Mode != 0o600 || fc.OnError != OnErrorExit {
		t.Errorf("FileConfig() got %+v", fc)
	}
}

func TestTextValues(t *testing.T) {
	for _, tt := range []struct {
		in   string
		into interface{ UnmarshalText([]byte) error }
		err  string
	}{
		{"0640", new(FileMode), ""},
		{"0999", new(FileMode), `"0999" is not an octal file mode such as "0640"`},
		{"01777", new(FileMode), `"01777" is not an octal file mode such as "0640"`},
		{"block", new(WhenFull), ""},
		{"wait", new(WhenFull), `"wait" is not drop_newest or block`},
		{"exit", new(OnError), ""},
		{"", new(OnError), `"" is not drop, block or exit`},
	} {
		err := tt.into.UnmarshalText([]byte(tt.in))
		if got := errString(err); got != tt.err {
			t.Errorf("%T.UnmarshalText(%q) got %q, want %q", tt.into, tt.in, got, tt.err)
		}
	}
}

func flattenErr(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
