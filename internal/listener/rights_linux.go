//go:build linux

package listener

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// ProbeJoin asks the kernel whether a socket without CAP_NET_ADMIN may
// join the process connector's group (1). It opens a connector socket and
// joins group 1 on a thread of its own that has dropped CAP_NET_ADMIN from
// its effective set (capabilities are per thread; the thread is discarded
// afterwards, so the rest of the process keeps them). Without the
// capability it simply tries. Nothing is subscribed and nothing is sent.
func ProbeJoin() JoinRights {
	res := make(chan JoinRights, 1)
	go func() {
		// Never unlocked: the thread, whose credentials were changed,
		// ends with this goroutine instead of going back to the pool.
		runtime.LockOSThread()
		res <- probeJoin()
	}()
	return <-res
}

func probeJoin() JoinRights {
	var r JoinRights
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		r.Err = &OpError{Op: "capget", Err: err}
		return r
	}
	word, bit := unix.CAP_NET_ADMIN/32, uint32(1)<<(unix.CAP_NET_ADMIN%32)
	r.CapNetAdmin = data[word].Effective&bit != 0
	if r.CapNetAdmin {
		data[word].Effective &^= bit
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			r.Err = &OpError{Op: "capset (drop CAP_NET_ADMIN on the probe's thread)", Err: err}
			return r
		}
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, Family)
	if err != nil {
		r.Err = &OpError{Op: "socket", Err: err}
		return r
	}
	defer unix.Close(fd)
	err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, ProcGroup)
	switch {
	case err == nil:
		r.Unprivileged = JoinAllowed
	case errors.Is(err, unix.EPERM):
		r.Unprivileged = JoinRefused
	default:
		r.Err = &OpError{Op: "join group 1", Err: err}
	}
	return r
}
