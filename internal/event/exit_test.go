package event

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeExit(t *testing.T) {
	tests := []struct {
		code   uint32
		want   ExitStatus
		string string
	}{
		{0, ExitStatus{Exited: true}, "exit status 0"},
		{256, ExitStatus{Exited: true, Status: 1}, "exit status 1"},
		{255 << 8, ExitStatus{Exited: true, Status: 255}, "exit status 255"},
		{2 << 8, ExitStatus{Exited: true, Status: 2}, "exit status 2"},
		{9, ExitStatus{Signal: "SIGKILL", SignalNum: 9}, "killed by SIGKILL"},
		{11, ExitStatus{Signal: "SIGSEGV", SignalNum: 11}, "killed by SIGSEGV"},
		{139, ExitStatus{Signal: "SIGSEGV", SignalNum: 11, CoreDumped: true}, "killed by SIGSEGV (core dumped)"},
		{134, ExitStatus{Signal: "SIGABRT", SignalNum: 6, CoreDumped: true}, "killed by SIGABRT (core dumped)"},
		{15, ExitStatus{Signal: "SIGTERM", SignalNum: 15}, "killed by SIGTERM"},
		{34, ExitStatus{Signal: "SIGRTMIN+2", SignalNum: 34}, "killed by SIGRTMIN+2"},
		{100, ExitStatus{SignalNum: 100}, "killed by signal 100"},
		{0x137f, ExitStatus{}, "unknown status"}, // stopped by SIGSTOP
		{0xffff, ExitStatus{}, "unknown status"}, // continued
	}
	for _, tt := range tests {
		t.Run(tt.string, func(t *testing.T) {
			got := DecodeExit(tt.code)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeExit(%d) mismatch (-want +got):\n%s", tt.code, diff)
			}
			if s := got.String(); s != tt.string {
				t.Errorf("DecodeExit(%d).String() = %q, want %q", tt.code, s, tt.string)
			}
		})
	}
}

func TestSignalName(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{-1, ""}, {0, ""}, {1, "SIGHUP"}, {2, "SIGINT"}, {6, "SIGABRT"}, {9, "SIGKILL"},
		{11, "SIGSEGV"}, {16, "SIGSTKFLT"}, {17, "SIGCHLD"}, {19, "SIGSTOP"}, {29, "SIGIO"},
		{30, "SIGPWR"}, {31, "SIGSYS"}, {32, "SIGRTMIN"}, {33, "SIGRTMIN+1"},
		{64, "SIGRTMIN+32"}, {65, ""}, {127, ""},
	}
	for _, tt := range tests {
		if got := SignalName(tt.n); got != tt.want {
			t.Errorf("SignalName(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func BenchmarkDecodeExit(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = DecodeExit(139)
	}
}
