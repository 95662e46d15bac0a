// Package listener does the kernel connector's socket I/O: it dials a
// NETLINK_CONNECTOR socket, joins multicast groups, performs the process
// connector's subscription handshake and receives datagrams in batches with
// the sender's netlink port id. It decodes nothing beyond what the handshake
// needs; the bridge decides what a datagram means.
package listener

import (
	"errors"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// Family is NETLINK_CONNECTOR.
const Family = 11

// ProcGroup is the multicast group of the process connector (CN_IDX_PROC).
const ProcGroup = 1

// Config configures a Listener.
type Config struct {
	Groups             []int
	ReceiveBufferBytes int
	BatchSize          int // datagrams per recvmmsg
	HandshakeTimeout   time.Duration
	// ProcMask selects the process events the kernel sends this socket
	// (cnmsg.ProcAll: everything). Narrower masks need Linux ≥ 6.6.
	ProcMask cnmsg.What
}

// Handler receives each batch of datagrams, with the time it was received.
// It runs on the reader goroutine: while it runs nothing is read, and the
// socket's buffer fills (it should wait only where the daemon's design
// says it may). The batch is empty when Run calls it for a Wake. A
// datagram's Data is valid only until the handler returns.
type Handler func(batch []cnmsg.Datagram, now time.Time)

// Errors.
var (
	// ErrNoAck means the kernel did not acknowledge the process connector
	// subscription: the daemon is not in the host's PID and user
	// namespaces, or the kernel lacks CONFIG_PROC_EVENTS.
	ErrNoAck = errors.New("the kernel did not acknowledge the process events subscription " +
		"(not in the host PID/user namespace, or CONFIG_PROC_EVENTS is off)")
	// ErrUnsupported is returned on systems without netlink.
	ErrUnsupported = errors.New("the kernel connector needs Linux")
)

// OpError is a socket operation that failed.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return "connector socket: " + e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// Stats are the listener's counters.
type Stats struct {
	Received  uint64 // datagrams
	Overruns  uint64 // ENOBUFS: the socket overflowed at least once
	Truncated uint64 // datagrams larger than the buffer
	Syscalls  uint64 // recvmmsg calls that returned data
	Empty     uint64 // recvmmsg calls that found the socket empty
}
