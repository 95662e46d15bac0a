package procinfo

import "strings"

// idLen is the length of a container id as docker, containerd, CRI-O and
// podman make them: 32 random bytes in lowercase hex.
const idLen = 64

// ContainerID returns the id of the container whose cgroup v2 path is
// cgroupPath, or "" if the path is not a container's. It does not allocate:
// the id is a substring of cgroupPath.
//
// The path's components are examined from the deepest up, and the first one
// that names a container wins, so a process in a cgroup nested inside a
// container's (systemd running in the container, a cgroup namespace) still
// gets the container's id, and in a container nested in another the inner
// one's. A component names a container if it is a 64-character lowercase hex
// id, optionally after one of the prefixes "docker-", "cri-containerd-",
// "crio-" or "libpod-" and before a ".scope" suffix. That covers:
//
//	/system.slice/docker-<id>.scope                docker, systemd driver
//	/docker/<id>                                   docker, cgroupfs driver
//	/kubepods.slice/…/cri-containerd-<id>.scope    containerd CRI, systemd driver
//	/kubepods/burstable/pod<uid>/<id>              kubelet, cgroupfs driver
//	/kubepods.slice/…/crio-<id>.scope              CRI-O
//	/machine.slice/libpod-<id>.scope               podman as root
//	/user.slice/…/user@1000.service/user.slice/libpod-<id>.scope   rootless podman
//
// "crio-conmon-<id>.scope" and "libpod-conmon-<id>.scope" hold conmon, the
// runtime's monitor for container <id>. Conmon runs on the host, outside the
// container's namespaces, so its processes are not the container's:
// ContainerID returns "" for them.
func ContainerID(cgroupPath string) string {
	p := cgroupPath
	for p != "" {
		c := p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			c, p = p[i+1:], p[:i]
		} else {
			p = ""
		}
		if id, ok := componentID(c); ok {
			return id
		}
	}
	return ""
}

// componentID returns the container id named by one cgroup path component.
// ok reports that c decides the answer: it names a container, or conmon.
func componentID(c string) (id string, ok bool) {
	if len(c) < idLen {
		return "", false
	}
	if isID(c) {
		return c, true
	}
	c = strings.TrimSuffix(c, ".scope")
	for _, prefix := range [...]string{"crio-conmon-", "libpod-conmon-"} {
		if rest, found := strings.CutPrefix(c, prefix); found && isID(rest) {
			return "", true
		}
	}
	for _, prefix := range [...]string{"docker-", "cri-containerd-", "crio-", "libpod-"} {
		if rest, found := strings.CutPrefix(c, prefix); found && isID(rest) {
			return rest, true
		}
	}
	return "", false
}

// isID reports whether s is 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
