package cnmsg

import "encoding/binary"

// What is proc_event.what (enum proc_cn_event in include/uapi/linux/cn_proc.h).
type What uint32

// Process event types. NonzeroExit is only a subscription filter bit; the
// kernel never sends it as an event's what.
const (
	ProcNone        What = 0x00000000 // PROC_EVENT_NONE: acknowledgement
	ProcFork        What = 0x00000001 // PROC_EVENT_FORK
	ProcExec        What = 0x00000002 // PROC_EVENT_EXEC
	ProcUID         What = 0x00000004 // PROC_EVENT_UID
	ProcGID         What = 0x00000040 // PROC_EVENT_GID
	ProcSID         What = 0x00000080 // PROC_EVENT_SID
	ProcPtrace      What = 0x00000100 // PROC_EVENT_PTRACE
	ProcComm        What = 0x00000200 // PROC_EVENT_COMM
	ProcNonzeroExit What = 0x20000000 // PROC_EVENT_NONZERO_EXIT (filter bit only)
	ProcCoredump    What = 0x40000000 // PROC_EVENT_COREDUMP
	ProcExit        What = 0x80000000 // PROC_EVENT_EXIT
	// ProcAll is every event type. It is not the kernel's PROC_EVENT_ALL,
	// which also has the ProcNonzeroExit filter bit (see procEventAll).
	ProcAll = ProcFork | ProcExec | ProcUID | ProcGID | ProcSID | ProcPtrace | ProcComm | ProcCoredump | ProcExit
)

// procEventAll is PROC_EVENT_ALL (include/uapi/linux/cn_proc.h, Linux ≥ 6.6):
// ProcAll plus the ProcNonzeroExit bit. A struct proc_input whose event_type
// is anything else, ProcAll included, is a filter, and a filtering socket
// never receives acks.
const procEventAll = ProcAll | ProcNonzeroExit

// Process connector subscription operations (enum proc_cn_mcast_op).
const (
	McastListen = 1 // PROC_CN_MCAST_LISTEN
	McastIgnore = 2 // PROC_CN_MCAST_IGNORE
)

// ProcEventLen is sizeof(struct proc_event) on current kernels.
const ProcEventLen = 40

// Minimum payload length for each event type: proc_event's 16-byte header
// plus the union member the type uses.
const (
	procHeaderLen     = 16
	minLenAck         = procHeaderLen + 4
	minLenPIDTGID     = procHeaderLen + 8
	minLenFour        = procHeaderLen + 16
	minLenComm        = procHeaderLen + 8 + 16
	minLenExit        = procHeaderLen + 16 // pid, tgid, exit_code, exit_signal
	minLenExitParents = procHeaderLen + 24 // plus parent_pid, parent_tgid
	minLenCoredump    = minLenPIDTGID      // pid, tgid (older kernels)
	minLenCoreParents = minLenFour         // plus parent_pid, parent_tgid
)

var whatNames = [...]struct {
	w    What
	name string
}{
	{ProcNone, "none"}, {ProcFork, "fork"}, {ProcExec, "exec"}, {ProcUID, "uid"},
	{ProcGID, "gid"}, {ProcSID, "sid"}, {ProcPtrace, "ptrace"}, {ProcComm, "comm"},
	{ProcCoredump, "coredump"}, {ProcExit, "exit"}, {ProcNonzeroExit, "nonzero_exit"},
}

// String returns the event's name as used in configs and output ("exec"),
// or "unknown".
func (w What) String() string {
	for _, n := range whatNames {
		if n.w == w {
			return n.name
		}
	}
	return "unknown"
}

// ParseWhat maps an event name ("exec", "nonzero_exit", …) to its value.
func ParseWhat(name string) (What, bool) {
	for _, n := range whatNames {
		if n.name == name {
			return n.w, true
		}
	}
	return 0, false
}

// ProcEvent is a decoded struct proc_event. The union is flattened: which
// fields are set depends on What, and fields are named after the kernel's.
type ProcEvent struct {
	What        What   // what
	CPU         uint32 // cpu: the CPU whose counter numbered cn_msg.seq
	TimestampNs uint64 // timestamp_ns: nanoseconds since boot

	Err uint32 // ack.err (what == ProcNone)

	PID  uint32 // process_pid / process_tgid for every type but fork and none
	TGID uint32

	ParentPID  uint32 // fork; exit and coredump when HasParent
	ParentTGID uint32
	ChildPID   uint32 // fork
	ChildTGID  uint32

	RUID, EUID uint32 // uid (id.r.ruid, id.e.euid)
	RGID, EGID uint32 // gid (id.r.rgid, id.e.egid)

	TracerPID  uint32 // ptrace (0: detach)
	TracerTGID uint32

	Comm [16]byte // comm, NUL-padded

	ExitCode   uint32 // exit: the wait status
	ExitSignal uint32 // exit: the signal sent to the parent

	// HasParent is set for exit and coredump events whose payload carries
	// parent_pid and parent_tgid (absent on older kernels).
	HasParent bool
}

// CommBytes returns Comm up to its first NUL.
func (e *ProcEvent) CommBytes() []byte {
	for i, c := range e.Comm {
		if c == 0 {
			return e.Comm[:i]
		}
	}
	return e.Comm[:]
}

// DecodeProc decodes a process connector payload (cn_msg.data of a 1.1
// message). Unknown event types decode their header only, without error.
// Exit and coredump payloads without the parent fields (older kernels) decode
// with HasParent false. When it returns ErrShortProcEvent after reading the
// 16-byte header, What, CPU and TimestampNs are set.
func DecodeProc(b []byte) (ProcEvent, error) {
	var e ProcEvent
	if len(b) < procHeaderLen {
		return e, ErrShortProcEvent
	}
	ne := binary.NativeEndian
	e.What = What(ne.Uint32(b[0:4]))
	e.CPU = ne.Uint32(b[4:8])
	e.TimestampNs = ne.Uint64(b[8:16])
	u := b[procHeaderLen:]
	need := 0
	switch e.What {
	case ProcNone:
		need = minLenAck
	case ProcFork, ProcUID, ProcGID, ProcPtrace:
		need = minLenFour
	case ProcExec, ProcSID:
		need = minLenPIDTGID
	case ProcCoredump:
		need = minLenCoredump
	case ProcComm:
		need = minLenComm
	case ProcExit:
		need = minLenExit
	}
	if len(b) < need {
		return e, ErrShortProcEvent
	}
	switch e.What {
	case ProcNone:
		e.Err = ne.Uint32(u[0:4])
	case ProcFork:
		e.ParentPID = ne.Uint32(u[0:4])
		e.ParentTGID = ne.Uint32(u[4:8])
		e.ChildPID = ne.Uint32(u[8:12])
		e.ChildTGID = ne.Uint32(u[12:16])
	case ProcExec, ProcSID:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
	case ProcUID:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		e.RUID, e.EUID = ne.Uint32(u[8:12]), ne.Uint32(u[12:16])
	case ProcGID:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		e.RGID, e.EGID = ne.Uint32(u[8:12]), ne.Uint32(u[12:16])
	case ProcPtrace:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		e.TracerPID, e.TracerTGID = ne.Uint32(u[8:12]), ne.Uint32(u[12:16])
	case ProcComm:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		copy(e.Comm[:], u[8:24])
	case ProcCoredump:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		if len(b) >= minLenCoreParents {
			e.ParentPID, e.ParentTGID = ne.Uint32(u[8:12]), ne.Uint32(u[12:16])
			e.HasParent = true
		}
	case ProcExit:
		e.PID, e.TGID = ne.Uint32(u[0:4]), ne.Uint32(u[4:8])
		e.ExitCode, e.ExitSignal = ne.Uint32(u[8:12]), ne.Uint32(u[12:16])
		if len(b) >= minLenExitParents {
			e.ParentPID, e.ParentTGID = ne.Uint32(u[16:20]), ne.Uint32(u[20:24])
			e.HasParent = true
		}
	}
	return e, nil
}

// AppendProc appends e in the kernel's 40-byte struct proc_event layout. It
// is the inverse of DecodeProc, for tests and for synthetic messages.
func AppendProc(dst []byte, e ProcEvent) []byte {
	ne := binary.NativeEndian
	var b [ProcEventLen]byte
	ne.PutUint32(b[0:4], uint32(e.What))
	ne.PutUint32(b[4:8], e.CPU)
	ne.PutUint64(b[8:16], e.TimestampNs)
	u := b[procHeaderLen:]
	put := func(vals ...uint32) {
		for i, v := range vals {
			ne.PutUint32(u[4*i:], v)
		}
	}
	switch e.What {
	case ProcNone:
		put(e.Err)
	case ProcFork:
		put(e.ParentPID, e.ParentTGID, e.ChildPID, e.ChildTGID)
	case ProcExec, ProcSID:
		put(e.PID, e.TGID)
	case ProcUID:
		put(e.PID, e.TGID, e.RUID, e.EUID)
	case ProcGID:
		put(e.PID, e.TGID, e.RGID, e.EGID)
	case ProcPtrace:
		put(e.PID, e.TGID, e.TracerPID, e.TracerTGID)
	case ProcComm:
		put(e.PID, e.TGID)
		copy(u[8:24], e.Comm[:])
	case ProcCoredump:
		put(e.PID, e.TGID, e.ParentPID, e.ParentTGID)
	case ProcExit:
		put(e.PID, e.TGID, e.ExitCode, e.ExitSignal, e.ParentPID, e.ParentTGID)
	}
	return append(dst, b[:]...)
}

// AppendMcastOp appends a subscription request payload: the 4-byte op alone
// when mask selects every event (ProcAll, with or without ProcNonzeroExit,
// which the kernel then ignores; understood by every kernel), or struct
// proc_input {mcast_op, event_type} (Linux ≥ 6.6) when it is a narrower mask.
func AppendMcastOp(dst []byte, op uint32, mask What) []byte {
	dst = binary.NativeEndian.AppendUint32(dst, op)
	if mask != ProcAll && mask != procEventAll {
		dst = binary.NativeEndian.AppendUint32(dst, uint32(mask))
	}
	return dst
}
