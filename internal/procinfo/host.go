package procinfo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PodUID returns the uid of the Kubernetes pod whose cgroup v2 path is
// cgroupPath, or "". The kubelet names a pod's cgroup "pod<uid>" (cgroupfs
// driver: /kubepods/burstable/pod1b2c…-…/) or, with the systemd driver,
// "kubepods-<qos>-pod<uid with _ for ->.slice"; both give the uid with
// dashes. Only paths with a "kubepods" component are considered.
func PodUID(cgroupPath string) string {
	if !strings.Contains(cgroupPath, "kubepods") {
		return ""
	}
	for _, c := range strings.Split(cgroupPath, "/") {
		c = strings.TrimSuffix(c, ".slice")
		i := strings.LastIndex(c, "pod")
		if i < 0 {
			continue
		}
		uid := c[i+len("pod"):]
		if len(uid) != 36 {
			continue
		}
		uid = strings.ReplaceAll(uid, "_", "-")
		if isUUID(uid) {
			return uid
		}
	}
	return ""
}

func isUUID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// BootID reads the kernel's boot id from <root>/sys/kernel/random/boot_id.
func BootID(root string) (string, error) {
	if root == "" {
		root = DefaultRoot
	}
	b, err := os.ReadFile(root + "/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// Scan returns the pids of the processes (thread groups) under root.
func Scan(root string) ([]uint32, error) {
	if root == "" {
		root = DefaultRoot
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	pids := make([]uint32, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && e.IsDir() {
			pids = append(pids, uint32(n))
		}
	}
	return pids, nil
}

// Tasks returns the thread ids of process tgid under root (its task
// directory). gone is true when the process has no entry there.
func Tasks(root string, tgid uint32) (tids map[uint32]bool, gone bool, err error) {
	if root == "" {
		root = DefaultRoot
	}
	ents, err := os.ReadDir(root + "/" + strconv.FormatUint(uint64(tgid), 10) + "/task")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, true, nil
		}
		return nil, false, err
	}
	tids = make(map[uint32]bool, len(ents))
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			tids[uint32(n)] = true
		}
	}
	return tids, false, nil
}

// TaskExists reports whether thread tid of process tgid has an entry
// under root.
func TaskExists(root string, tgid, tid uint32) bool {
	if root == "" {
		root = DefaultRoot
	}
	_, err := os.Lstat(root + "/" + strconv.FormatUint(uint64(tgid), 10) + "/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}

// Users maps uids to names from a passwd file, read again at most once per
// MinReload when a uid is not found. Not safe for concurrent use.
type Users struct {
	// Path is the passwd file; empty means /etc/passwd.
	Path      string
	MinReload time.Duration // zero: 10s
	names     map[uint32]string
	loaded    time.Time
}

// Name returns the name of uid, or "" when the passwd file lacks it.
func (u *Users) Name(uid uint32, now time.Time) string {
	if n, ok := u.names[uid]; ok {
		return n
	}
	minReload := u.MinReload
	if minReload <= 0 {
		minReload = 10 * time.Second
	}
	if u.names != nil && now.Sub(u.loaded) < minReload {
		return ""
	}
	u.loaded = now
	path := u.Path
	if path == "" {
		path = "/etc/passwd"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if u.names == nil {
			u.names = map[uint32]string{}
		}
		return ""
	}
	u.names = ParsePasswd(b)
	return u.names[uid]
}

// ParsePasswd returns the uid → name map of a passwd file's contents
// (name:password:uid:…); malformed lines are skipped, the first name of a
// uid wins.
func ParsePasswd(b []byte) map[uint32]string {
	m := map[uint32]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := m[uint32(uid)]; !dup {
			m[uint32(uid)] = f[0]
		}
	}
	return m
}
