package event

import "strconv"

// ExitStatus is a decoded wait status, as carried in the exit_code field of a
// process connector exit event.
type ExitStatus struct {
	// Status is the exit status (0-255) when Exited.
	Status int
	// Signal is the name (SignalName) of the signal that killed the
	// process, and SignalNum its number; both are zero when it exited.
	Signal    string
	SignalNum int
	// CoreDumped reports that the killing signal dumped core.
	CoreDumped bool
	// Exited reports a normal exit, by exit(2) or a return from main.
	Exited bool
}

// DecodeExit decodes a wait status, the kernel's task exit_code: the exit
// status in bits 8-15 when the low 7 bits are zero, otherwise the killing
// signal in the low 7 bits and bit 7 set if core was dumped. So 256 is
// exit(1), 9 is SIGKILL, 11 is SIGSEGV and 139 is SIGSEGV with a core dump.
//
// A stop or continue status (low 7 bits 0x7f), which never comes
// with an exit event, decodes to the zero ExitStatus.
func DecodeExit(code uint32) ExitStatus {
	sig := int(code & 0x7f)
	switch {
	case sig == 0:
		return ExitStatus{Exited: true, Status: int(code>>8) & 0xff}
	case sig == 0x7f: // WIFSTOPPED, or 0xffff: WIFCONTINUED
		return ExitStatus{}
	default:
		return ExitStatus{SignalNum: sig, Signal: SignalName(sig), CoreDumped: code&0x80 != 0}
	}
}

// String describes the status for people: "exit status 1",
// "killed by SIGSEGV (core dumped)".
func (s ExitStatus) String() string {
	switch {
	case s.Exited:
		return "exit status " + strconv.Itoa(s.Status)
	case s.SignalNum != 0:
		name := s.Signal
		if name == "" {
			name = "signal " + strconv.Itoa(s.SignalNum)
		}
		if s.CoreDumped {
			return "killed by " + name + " (core dumped)"
		}
		return "killed by " + name
	default:
		return "unknown status"
	}
}

// SignalName returns the name of Linux signal n ("SIGKILL"), or "" if n is
// not a signal number. The numbers are those of x86, arm64, riscv and the
// other architectures that use the generic numbering, not those of alpha,
// mips, parisc or sparc.
//
// Real-time signals are named from the kernel's SIGRTMIN, 32: "SIGRTMIN",
// "SIGRTMIN+1" … "SIGRTMIN+32" (64, SIGRTMAX). glibc keeps 32 and 33 for
// itself and its SIGRTMIN is 34, so `kill -l` calls 34 SIGRTMIN where this
// says SIGRTMIN+2.
func SignalName(n int) string {
	if n < 1 || n >= len(signalNames) {
		return ""
	}
	return signalNames[n]
}

var signalNames = [...]string{
	1:  "SIGHUP",
	2:  "SIGINT",
	3:  "SIGQUIT",
	4:  "SIGILL",
	5:  "SIGTRAP",
	6:  "SIGABRT",
	7:  "SIGBUS",
	8:  "SIGFPE",
	9:  "SIGKILL",
	10: "SIGUSR1",
	11: "SIGSEGV",
	12: "SIGUSR2",
	13: "SIGPIPE",
	14: "SIGALRM",
	15: "SIGTERM",
	16: "SIGSTKFLT",
	17: "SIGCHLD",
	18: "SIGCONT",
	19: "SIGSTOP",
	20: "SIGTSTP",
	21: "SIGTTIN",
	22: "SIGTTOU",
	23: "SIGURG",
	24: "SIGXCPU",
	25: "SIGXFSZ",
	26: "SIGVTALRM",
	27: "SIGPROF",
	28: "SIGWINCH",
	29: "SIGIO",
	30: "SIGPWR",
	31: "SIGSYS",
	32: "SIGRTMIN",
	33: "SIGRTMIN+1", 34: "SIGRTMIN+2", 35: "SIGRTMIN+3", 36: "SIGRTMIN+4",
	37: "SIGRTMIN+5", 38: "SIGRTMIN+6", 39: "SIGRTMIN+7", 40: "SIGRTMIN+8",
	41: "SIGRTMIN+9", 42: "SIGRTMIN+10", 43: "SIGRTMIN+11", 44: "SIGRTMIN+12",
	45: "SIGRTMIN+13", 46: "SIGRTMIN+14", 47: "SIGRTMIN+15", 48: "SIGRTMIN+16",
	49: "SIGRTMIN+17", 50: "SIGRTMIN+18", 51: "SIGRTMIN+19", 52: "SIGRTMIN+20",
	53: "SIGRTMIN+21", 54: "SIGRTMIN+22", 55: "SIGRTMIN+23", 56: "SIGRTMIN+24",
	57: "SIGRTMIN+25", 58: "SIGRTMIN+26", 59: "SIGRTMIN+27", 60: "SIGRTMIN+28",
	61: "SIGRTMIN+29", 62: "SIGRTMIN+30", 63: "SIGRTMIN+31", 64: "SIGRTMIN+32",
}
