package procinfo

// Fields is a set of the files an exec's description reads (ReadExec and
// Capture), one bit each.
type Fields uint8

// The fields of an exec, in the order Capture reads them.
const (
	FieldCmdline Fields = 1 << iota
	FieldExe
	FieldCwd
	FieldCgroup
	FieldComm
)

// ExecFields are all the fields of an exec.
const ExecFields = FieldCmdline | FieldExe | FieldCwd | FieldCgroup | FieldComm

// captureOrder is the order in which a process that ends loses what an exec
// reads: do_exit releases the memory map first (exit_mm: cmdline reads empty
// and exe no longer resolves), then the working directory (exit_fs); cgroup
// and comm stay until the zombie is reaped.
var captureOrder = [...]Fields{FieldCmdline, FieldExe, FieldCwd, FieldCgroup, FieldComm}

// fieldNames are the names of the fields, as the process table and the
// JSON line's "missing" list spell them, in captureOrder.
var fieldNames = [...]string{"cmdline", "exe", "cwd", "cgroup", "comm"}

// Names returns the names of the fields in f ("cmdline", "exe", "cwd",
// "cgroup", "comm"), in the order Capture reads them; nil for none.
func (f Fields) Names() []string {
	var out []string
	for i, b := range captureOrder {
		if f&b != 0 {
			out = append(out, fieldNames[i])
		}
	}
	return out
}

// Capture reads what ReadExec reads, for the exec of process pid, at once,
// as the event is received: in the order the process loses it as it ends
// (cmdline, exe, cwd, cgroup, comm; see captureOrder), and only while more
// allows. more is asked before each file (the /proc/<pid> directory is
// opened with the first); once it says no, Capture stops and leaves the
// rest for a later ReadExec.
//
// got is the set of fields read: also when the file was empty (a zombie's
// cmdline) or the link had no target (a zombie's exe) or was refused (then
// named in info.Unreadable). A process gone before the first read yields
// Info{Gone: true} and no fields; one that goes during the reads (a
// file's open fails with ENOENT or ESRCH) keeps what was read before, with
// Gone set: the other fields can no longer be read. A read that fails
// otherwise returns its error with what was read before it.
//
// Unlike ReadExec it reuses no strings: the caller runs it where the
// process table is not at hand (the kernel reader's goroutine).
func (r *Reader) Capture(pid uint32, more func() bool) (info Info, got Fields, err error) {
	if !more() {
		return Info{}, 0, nil
	}
	dir, gone, err := r.open(pid)
	switch {
	case err != nil:
		return Info{}, 0, err
	case gone:
		return Info{Gone: true}, 0, nil
	}
	defer closeFD(dir)
	for i, f := range captureOrder {
		if i > 0 && !more() {
			return info, got, nil
		}
		var err error
		switch f {
		case FieldCmdline:
			maxCmd := r.MaxCmdline
			if maxCmd <= 0 {
				maxCmd = DefaultMaxCmdline
			}
			var b []byte
			if b, err = r.readFile(dir, "cmdline", maxCmd+1); err == nil {
				info.Cmdline, info.CmdlineTruncated = parseCmdline(b, maxCmd)
			}
		case FieldExe:
			err = r.readLink(dir, "exe", &info.Exe, &info)
		case FieldCwd:
			err = r.readLink(dir, "cwd", &info.Cwd, &info)
		case FieldCgroup:
			var b []byte
			if b, err = r.readFile(dir, "cgroup", maxFileSize); err == nil {
				if cg, ok := parseCgroup(b); ok {
					info.Cgroup = string(cg)
					info.ContainerID, info.PodUID = ContainerID(info.Cgroup), PodUID(info.Cgroup)
				}
			}
		case FieldComm:
			var b []byte
			if b, err = r.readFile(dir, "comm", maxFileSize); err == nil {
				info.Comm = string(trimNewline(b))
			}
		}
		switch {
		case err == nil:
			got |= f
		case isGone(err):
			info.Gone = true
			return info, got, nil
		default:
			return info, got, r.pathError("read", pid, fieldNames[i], err)
		}
	}
	return info, got, nil
}

// readLink reads the link file of the process dir into *dst. A link that has no target (a process
// without an mm: a zombie, a kernel thread) is left empty; one the reader
// may not follow is left empty and named in info.Unreadable. Only other
// errors are returned.
func (r *Reader) readLink(dir int, file string, dst *string, info *Info) error {
	n, err := readlinkAt(dir, r.name(file), r.buf)
	switch {
	case err == nil:
		*dst = string(r.buf[:n])
	case isDenied(err):
		info.Unreadable = append(info.Unreadable, file)
	case isGone(err):
		// No target: for exe a zombie or a kernel thread, for cwd a
		// process past exit_fs. The directory is still there: the
		// process has not been reaped.
	default:
		return err
	}
	return nil
}

func trimNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return b[:len(b)-1]
	}
	return b
}
