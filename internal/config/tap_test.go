package config

import (
	"strings"
	"testing"
)

func TestTapConfig(t *testing.T) {
	tests := []struct {
		name    string
		set     []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"disabled", []string{"tap.socket="}, ""},
		{"bad mode", []string{"tap.mode=rw"}, `tap.mode: "rw" is not an octal file mode such as "0640"`},
		{"mode too wide", []string{"tap.mode=1777"}, "tap.mode"},
		{"client buffer", []string{"tap.client_buffer=0"}, "tap.client_buffer: must be at least 1"},
		{"queue", []string{"tap.queue_size=0"}, "tap.queue_size: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Options{DefaultPath: "/nonexistent/cnbridged.yaml", Set: tt.set})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load = %v (config %+v), want an error containing %q", err, c, tt.wantErr)
			}
		})
	}
	c, err := Load(Options{DefaultPath: "/nonexistent/cnbridged.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tap{Socket: "/run/cnbridged/tap.sock", Mode: 0o600, ClientBuffer: 4096, QueueSize: 8192}); c.Tap != want {
		t.Errorf("defaults: got %+v, want %+v", c.Tap, want)
	}
}
