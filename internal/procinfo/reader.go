package procinfo

import (
	"bytes"
	"errors"
	"io/fs"
	"strconv"
	"strings"
)

// Reader defaults.
const (
	DefaultRoot       = "/proc"
	DefaultMaxCmdline = 4096
)

const (
	initialBufSize = 4096
	// maxFileSize bounds how much of status or cgroup is read. Both are
	// far smaller; the bound only guards against a runaway file.
	maxFileSize = 64 << 10
)

// Reader reads process information from a proc file system.
//
// The zero value reads /proc with the default limits. A Reader keeps its
// buffers between calls, so it must be used by one goroutine at a time: give
// each goroutine its own.
type Reader struct {
	// Root is where proc is mounted; empty means DefaultRoot. Tests point
	// it at a fixture tree.
	Root string
	// MaxCmdline is how many bytes of a command line are read; zero or
	// less means DefaultMaxCmdline.
	MaxCmdline int

	buf  []byte // file contents, reused
	path []byte // NUL-terminated path, reused
	// root is an open descriptor of Root when rootOpen, held for the
	// Reader's life: /proc/<pid> is opened relative to it, one path
	// component to look up instead of three.
	root     int
	rootOpen bool
}

// Read returns what the proc file system says about process pid.
//
// A process that has gone, or goes while it is read (any step failing with
// ENOENT or ESRCH), yields Info{Gone: true} and a nil error. All files are
// opened relative to one open /proc/<pid> directory, so they describe the
// same process even if its pid is reused during the read.
//
// Read allocates only the strings it returns, and the Cmdline slice.
func (r *Reader) Read(pid uint32) (Info, error) {
	dir, gone, err := r.open(pid)
	if gone || err != nil {
		return Info{Gone: gone}, err
	}
	defer closeFD(dir)
	var info Info
	if err := r.readLinks(pid, dir, &info, &Info{}); err != nil {
		return Info{}, err
	}
	b, err := r.readFile(dir, "status", maxFileSize)
	if err != nil {
		return r.fail(pid, "status", err)
	}
	st := parseStatus(b)
	info.PPID, info.UID, info.EUID, info.GID, info.EGID = st.ppid, st.uid, st.euid, st.gid, st.egid
	if file, err := r.readImage(dir, &info, &Info{}); err != nil {
		return r.fail(pid, file, err)
	}
	if b, err = r.readFile(dir, "stat", maxFileSize); err != nil {
		return r.fail(pid, "stat", err)
	}
	info.StartTicks, _ = parseStartTicks(b)
	return info, nil
}

// ReadExec reads what an exec changes and the connector does not say: the
// executable, working directory, comm, command line and cgroup. It skips
// status and stat: the process table already knows the parent and the
// start, and the uids and gids, which an exec changes only for a set-id
// executable, and then the kernel reports it in a uid or gid event sent
// before the exec event (commit_creds notifies every credential change).
// The cgroup is read too, because a process is moved into its cgroup
// between its fork and its exec (runc init, systemd, cgexec, systemd-run
// --scope), or starts in another cgroup than its parent's (clone3
// CLONE_INTO_CGROUP): the connector reports neither.
//
// like, when not nil, is what is known of the process before the exec: a
// file read equal to its field reuses that string instead of allocating
// one (the working directory and cgroup rarely change at an exec).
func (r *Reader) ReadExec(pid uint32, like *Info) (Info, error) {
	if like == nil {
		like = &Info{}
	}
	dir, gone, err := r.open(pid)
	if gone || err != nil {
		return Info{Gone: gone}, err
	}
	defer closeFD(dir)
	var info Info
	if err := r.readLinks(pid, dir, &info, like); err != nil {
		return Info{}, err
	}
	if file, err := r.readImage(dir, &info, like); err != nil {
		return r.fail(pid, file, err)
	}
	return info, nil
}

// open opens /proc/<pid> for the reads of one process. gone reports that
// it has no entry (the process has gone).
func (r *Reader) open(pid uint32) (dir int, gone bool, err error) {
	if r.buf == nil {
		r.buf = make([]byte, initialBufSize)
	}
	dir, err = r.openPID(pid)
	switch {
	case err == nil:
		return dir, false, nil
	case isGone(err):
		return -1, true, nil
	}
	return -1, false, r.pathError("open", pid, "", err)
}

// readLinks reads the targets of exe and cwd into info, reusing like's
// strings. A link the reader may not follow (another user's process,
// without ptrace access) is left empty and named in info.Unreadable; exe
// fails with ENOENT both for a process that has gone and for one without
// an mm (a kernel thread, a zombie), and is then left empty: the files
// read after it tell the two apart.
func (r *Reader) readLinks(pid uint32, dir int, info, like *Info) error {
	n, err := readlinkAt(dir, r.name("exe"), r.buf)
	switch {
	case err == nil:
		info.Exe = reuse(r.buf[:n], like.Exe)
	case isDenied(err):
		info.Unreadable = append(info.Unreadable, "exe")
	case !isGone(err):
		return r.pathError("readlink", pid, "exe", err)
	}
	n, err = readlinkAt(dir, r.name("cwd"), r.buf)
	switch {
	case err == nil:
		info.Cwd = reuse(r.buf[:n], like.Cwd)
	case isDenied(err):
		info.Unreadable = append(info.Unreadable, "cwd")
	}
	return nil
}

// readImage reads comm, cmdline and cgroup of the process dir into info,
// reusing like's strings where a file still holds them. On failure it
// names the file.
func (r *Reader) readImage(dir int, info, like *Info) (file string, err error) {
	b, err := r.readFile(dir, "comm", maxFileSize)
	if err != nil {
		return "comm", err
	}
	info.Comm = reuse(bytes.TrimSuffix(b, []byte{'\n'}), like.Comm)
	maxCmd := r.MaxCmdline
	if maxCmd <= 0 {
		maxCmd = DefaultMaxCmdline
	}
	if b, err = r.readFile(dir, "cmdline", maxCmd+1); err != nil {
		return "cmdline", err
	}
	info.Cmdline, info.CmdlineTruncated = parseCmdline(b, maxCmd)
	if b, err = r.readFile(dir, "cgroup", maxFileSize); err != nil {
		return "cgroup", err
	}
	if cg, ok := parseCgroup(b); ok {
		if string(cg) == like.Cgroup && like.Cgroup != "" {
			info.Cgroup, info.ContainerID, info.PodUID = like.Cgroup, like.ContainerID, like.PodUID
		} else {
			info.Cgroup = string(cg)
			info.ContainerID = ContainerID(info.Cgroup)
			info.PodUID = PodUID(info.Cgroup)
		}
	}
	return "", nil
}

// reuse returns old if it holds the bytes b, else b as a new string.
func reuse(b []byte, old string) string {
	if string(b) == old {
		return old
	}
	return string(b)
}

// ReadStartTicks reads field 22 of /proc/<pid>/stat: the start in
// CLOCK_BOOTTIME clock ticks.
func (r *Reader) ReadStartTicks(pid uint32) (ticks uint64, gone bool, err error) {
	dir, gone, err := r.open(pid)
	if gone || err != nil {
		return 0, gone, err
	}
	defer closeFD(dir)
	b, err := r.readFile(dir, "stat", maxFileSize)
	if err != nil {
		if isGone(err) {
			return 0, true, nil
		}
		return 0, false, r.pathError("read", pid, "stat", err)
	}
	t, ok := parseStartTicks(b)
	if !ok {
		return 0, false, r.pathError("parse", pid, "stat", errBadStat)
	}
	return t, false, nil
}

func (r *Reader) openPID(pid uint32) (int, error) {
	if !r.rootOpen {
		root := r.Root
		if root == "" {
			root = DefaultRoot
		}
		fd, err := openDir(append([]byte(root), 0))
		if err != nil {
			return -1, err
		}
		r.root, r.rootOpen = fd, true
	}
	r.path = strconv.AppendUint(r.path[:0], uint64(pid), 10)
	r.path = append(r.path, 0)
	return openDirAt(r.root, r.path)
}

// Close closes the descriptor of Root the Reader holds, if any. The
// Reader may be used again afterwards (it reopens Root).
func (r *Reader) Close() {
	if r.rootOpen {
		closeFD(r.root)
		r.rootOpen = false
	}
}

var errBadStat = errors.New("no starttime field after the command name")

// parseStartTicks returns field 22 (starttime) of /proc/<pid>/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStartTicks(b []byte) (uint64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:]) // fields 3…
	const idx = 22 - 3
	if len(f) <= idx {
		return 0, false
	}
	v, err := strconv.ParseUint(string(f[idx]), 10, 64)
	return v, err == nil
}

// fail turns a failed read of a pid's file into Read's result.
func (r *Reader) fail(pid uint32, file string, err error) (Info, error) {
	if isGone(err) {
		return Info{Gone: true}, nil
	}
	return Info{}, r.pathError("read", pid, file, err)
}

// pathError builds the error for a failed operation on <root>/<pid>/<file>. It
// runs on the error path only.
func (r *Reader) pathError(op string, pid uint32, file string, err error) error {
	root := r.Root
	if root == "" {
		root = DefaultRoot
	}
	p := root + "/" + strconv.FormatUint(uint64(pid), 10)
	if file != "" {
		p += "/" + file
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// name returns file as a NUL-terminated path in the reused path buffer.
func (r *Reader) name(file string) []byte {
	r.path = append(r.path[:0], file...)
	r.path = append(r.path, 0)
	return r.path
}

// readFile reads up to limit bytes of file, relative to the directory dir,
// into the reused buffer, growing it as needed. The result is valid until the
// next call.
func (r *Reader) readFile(dir int, file string, limit int) ([]byte, error) {
	fd, err := openAt(dir, r.name(file))
	if err != nil {
		return nil, err
	}
	defer closeFD(fd)
	n := 0
	for n < limit {
		if n == len(r.buf) {
			r.grow(min(2*len(r.buf), limit))
		}
		want := min(len(r.buf), limit) - n
		m, err := readFD(fd, r.buf[n:n+want])
		if err != nil {
			return nil, err
		}
		n += m
		// proc files (seq_file and cmdline alike) fill the whole request
		// unless they reach the end, and so do regular files: a short
		// read is the end of the file, which saves a read per file.
		if m < want {
			break
		}
	}
	return r.buf[:n], nil
}

func (r *Reader) grow(size int) {
	b := make([]byte, size)
	copy(b, r.buf)
	r.buf = b
}

type status struct{ ppid, uid, euid, gid, egid uint32 }

// parseStatus returns the parent pid and the real and effective uid and
// gid from the contents of /proc/<pid>/status. A missing or malformed line
// yields 0.
func parseStatus(b []byte) (st status) {
	const want = 3
	found := 0
	for len(b) > 0 && found < want {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("PPid:")):
			st.ppid = firstUint(line[len("PPid:"):])
			found++
		case bytes.HasPrefix(line, []byte("Uid:")):
			st.uid, st.euid = twoUints(line[len("Uid:"):]) // real, effective, saved, fs
			found++
		case bytes.HasPrefix(line, []byte("Gid:")):
			st.gid, st.egid = twoUints(line[len("Gid:"):])
			found++
		}
	}
	return st
}

// twoUints parses the first two whitespace-separated fields of b.
func twoUints(b []byte) (a, c uint32) {
	a = firstUint(b)
	b = bytes.TrimLeft(b, " \t")
	if i := bytes.IndexAny(b, " \t"); i >= 0 {
		c = firstUint(b[i:])
	}
	return a, c
}

// firstUint parses the first whitespace-separated field of b as a uint32,
// returning 0 if it is not one.
func firstUint(b []byte) uint32 {
	b = bytes.TrimLeft(b, " \t")
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
		if v > 1<<32-1 {
			return 0
		}
	}
	if i == 0 || (i < len(b) && b[i] != ' ' && b[i] != '\t') {
		return 0
	}
	return uint32(v)
}

// parseCmdline splits the contents of /proc/<pid>/cmdline, of which at most
// max bytes are kept, at NUL bytes. It allocates one string for the whole
// command line and one slice. A process that rewrote its arguments as one
// space-separated string (setproctitle) yields one element.
func parseCmdline(b []byte, max int) (args []string, truncated bool) {
	if len(b) > max {
		b, truncated = b[:max], true
	}
	if !truncated {
		b = bytes.TrimSuffix(b, []byte{0})
	}
	if len(b) == 0 {
		return nil, truncated
	}
	s := string(b)
	args = make([]string, 0, strings.Count(s, "\x00")+1)
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(args, s), truncated
		}
		args = append(args, s[:i])
		s = s[i+1:]
	}
}

// parseCgroup returns the cgroup v2 path from the contents of
// /proc/<pid>/cgroup: the line "0::<path>". ok is false if there is none.
func parseCgroup(b []byte) (path []byte, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if p, found := bytes.CutPrefix(line, []byte("0::")); found {
			return p, true
		}
	}
	return nil, false
}
