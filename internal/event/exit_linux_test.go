package event

import (
	"os/exec"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDecodeExitReal checks DecodeExit against wait statuses the kernel made,
// as reported by the syscall package's own decoding.
func TestDecodeExitReal(t *testing.T) {
	tests := []struct {
		script string
		want   ExitStatus
	}{
		{"exit 3", ExitStatus{Exited: true, Status: 3}},
		{"kill -KILL $$", ExitStatus{Signal: "SIGKILL", SignalNum: 9}},
		{"kill -TERM $$", ExitStatus{Signal: "SIGTERM", SignalNum: 15}},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tt.script)
			_ = cmd.Run()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if diff := cmp.Diff(tt.want, DecodeExit(uint32(ws))); diff != "" {
				t.Errorf("DecodeExit(%#x) mismatch (-want +got):\n%s", uint32(ws), diff)
			}
		})
	}
}

// TestSignalNumbers checks the names against this architecture's numbers.
func TestSignalNumbers(t *testing.T) {
	signals := []struct {
		sig  syscall.Signal
		name string
	}{
		{syscall.SIGHUP, "SIGHUP"}, {syscall.SIGINT, "SIGINT"}, {syscall.SIGQUIT, "SIGQUIT"},
		{syscall.SIGILL, "SIGILL"}, {syscall.SIGTRAP, "SIGTRAP"}, {syscall.SIGABRT, "SIGABRT"},
		{syscall.SIGBUS, "SIGBUS"}, {syscall.SIGFPE, "SIGFPE"}, {syscall.SIGKILL, "SIGKILL"},
		{syscall.SIGUSR1, "SIGUSR1"}, {syscall.SIGSEGV, "SIGSEGV"}, {syscall.SIGUSR2, "SIGUSR2"},
		{syscall.SIGPIPE, "SIGPIPE"}, {syscall.SIGALRM, "SIGALRM"}, {syscall.SIGTERM, "SIGTERM"},
		{syscall.SIGSTKFLT, "SIGSTKFLT"}, {syscall.SIGCHLD, "SIGCHLD"}, {syscall.SIGCONT, "SIGCONT"},
		{syscall.SIGSTOP, "SIGSTOP"}, {syscall.SIGTSTP, "SIGTSTP"}, {syscall.SIGTTIN, "SIGTTIN"},
		{syscall.SIGTTOU, "SIGTTOU"}, {syscall.SIGURG, "SIGURG"}, {syscall.SIGXCPU, "SIGXCPU"},
		{syscall.SIGXFSZ, "SIGXFSZ"}, {syscall.SIGVTALRM, "SIGVTALRM"}, {syscall.SIGPROF, "SIGPROF"},
		{syscall.SIGWINCH, "SIGWINCH"}, {syscall.SIGIO, "SIGIO"}, {syscall.SIGPWR, "SIGPWR"},
		{syscall.SIGSYS, "SIGSYS"},
	}
	for _, s := range signals {
		if got := SignalName(int(s.sig)); got != s.name {
			t.Errorf("SignalName(%d) = %q, want %q", int(s.sig), got, s.name)
		}
	}
}
