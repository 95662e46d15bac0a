//go:build linux

package listener

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Emitter multicasts synthetic connector messages (needs CAP_NET_ADMIN).
type Emitter struct {
	fd int
}

// NewEmitter opens a connector socket for sending.
func NewEmitter() (*Emitter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, Family)
	if err != nil {
		return nil, &OpError{Op: "socket", Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "bind", Err: err}
	}
	return &Emitter{fd: fd}, nil
}

// PortID returns the socket's netlink port id.
func (e *Emitter) PortID() uint32 {
	sa, err := unix.Getsockname(e.fd)
	if err != nil {
		return 0
	}
	if nl, ok := sa.(*unix.SockaddrNetlink); ok {
		return nl.Pid
	}
	return 0
}

// Emit multicasts one datagram to group (1..32).
func (e *Emitter) Emit(datagram []byte, group int) error {
	if group < 1 || group > 32 {
		return fmt.Errorf("group %d is outside 1..32", group)
	}
	for {
		err := unix.Sendto(e.fd, datagram, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (group - 1)})
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOBUFS, unix.EAGAIN:
			// Our own send buffer is full: wait and retry.
			time.Sleep(50 * time.Microsecond)
			continue
		}
		return &OpError{Op: "sendto", Err: err}
	}
}

// SendKernel sends one datagram to the kernel (port id 0) only.
func (e *Emitter) SendKernel(datagram []byte) error {
	for {
		err := unix.Sendto(e.fd, datagram, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		}
		return &OpError{Op: "sendto kernel", Err: err}
	}
}

// ReadUnicast reads datagrams sent to this socket's own port id (unicast
// replies) and hands each to h with its sender, until ctx ends.
func (e *Emitter) ReadUnicast(ctx context.Context, h func(datagram []byte, sender uint32)) error {
	tv := unix.Timeval{Usec: 200000}
	if err := unix.SetsockoptTimeval(e.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return &OpError{Op: "setsockopt SO_RCVTIMEO", Err: err}
	}
	buf := make([]byte, bufSize)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(e.fd, buf, 0)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR || err == unix.ENOBUFS:
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return &OpError{Op: "recvfrom", Err: err}
		}
		var sender uint32
		if nl, ok := from.(*unix.SockaddrNetlink); ok {
			sender = nl.Pid
		}
		h(buf[:n], sender)
	}
	return nil
}

// Close closes the socket.
func (e *Emitter) Close() error { return unix.Close(e.fd) }
