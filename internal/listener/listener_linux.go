//go:build linux

package listener

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// bufSize holds the largest connector datagram with room to spare.
const bufSize = cnmsg.MaxDatagram + 4096

// Listener owns the connector socket.
type Listener struct {
	cfg  Config
	log  *zap.Logger
	conn *netlink.Conn
	raw  syscall.RawConn

	mu     sync.Mutex // groups, proc subscription
	groups []int
	procOn bool
	mask   cnmsg.What

	// receive state, owned by the reader goroutine
	hdrs   []unix.Mmsghdr // the kernel's layout on every GOARCH (32 bytes on 386 and arm)
	iovs   []unix.Iovec
	names  []unix.RawSockaddrNetlink
	bufs   [][]byte
	dgrams []cnmsg.Datagram
	n      int
	errno  syscall.Errno

	// kick is an eventfd that wakes the reader from poll(2): Wake and
	// the end of Run write to it. kickMu orders those writes with Close.
	kick   int
	kickMu sync.RWMutex

	// want is the reader's realtime priority asked for (SetPriority).
	// The rest is the reader's own: asked is the one it last acted on, rt
	// the one in effect (0: none, the goroutine not locked to its
	// thread), normal the thread's scheduling before; fds are wait's;
	// got and recvFn pollRecv's.
	want   atomic.Int32
	asked  int
	rt     int
	normal unix.SchedAttr
	fds    [2]unix.PollFd
	got    bool
	recvFn func(uintptr) bool

	// base is when the Listener was made; emptyAt is the time after it,
	// in ns, just before the last receive that found the socket empty
	// (0: none yet), see EmptyAt.
	base    time.Time
	emptyAt atomic.Int64

	waitAck    atomic.Uint32 // ack value awaited + 1 (0: none)
	ackCh      chan struct{}
	subscribed atomic.Bool
	wake       atomic.Bool // see Wake

	received, overruns, truncated, syscalls, empties atomic.Uint64
	seq                                              atomic.Uint32
}

// New dials the socket, sets its receive buffer and joins cfg.Groups. It
// does not subscribe to process events: call Run, then Subscribe.
func New(cfg Config, log *zap.Logger) (*Listener, error) {
	if cfg.BatchSize < 1 {
		cfg.BatchSize = 64
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 2 * time.Second
	}
	if cfg.ProcMask == 0 {
		cfg.ProcMask = cnmsg.ProcAll
	}
	conn, err := netlink.Dial(Family, nil)
	if err != nil {
		return nil, &OpError{Op: "dial", Err: err}
	}
	l := &Listener{cfg: cfg, log: log.Named("listener"), conn: conn, mask: cfg.ProcMask, ackCh: make(chan struct{}, 1), base: time.Now()}
	if l.raw, err = conn.SyscallConn(); err != nil {
		conn.Close()
		return nil, &OpError{Op: "syscall-conn", Err: err}
	}
	if l.kick, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		conn.Close()
		return nil, &OpError{Op: "eventfd", Err: err}
	}
	if cfg.ReceiveBufferBytes > 0 {
		if err := conn.SetReadBuffer(cfg.ReceiveBufferBytes); err != nil {
			conn.Close()
			return nil, &OpError{Op: "set-receive-buffer", Err: err}
		}
	}
	if err := l.SetGroups(cfg.Groups); err != nil {
		conn.Close()
		return nil, err
	}
	l.allocBuffers(cfg.BatchSize)
	l.recvFn = l.pollRead
	var r [4]byte
	rand.Read(r[:])
	l.seq.Store(binary.NativeEndian.Uint32(r[:]))
	return l, nil
}

func (l *Listener) allocBuffers(n int) {
	l.hdrs = make([]unix.Mmsghdr, n)
	l.iovs = make([]unix.Iovec, n)
	l.names = make([]unix.RawSockaddrNetlink, n)
	l.bufs = make([][]byte, n)
	l.dgrams = make([]cnmsg.Datagram, n)
	for i := range n {
		l.bufs[i] = make([]byte, bufSize)
		l.iovs[i].Base = &l.bufs[i][0]
		l.iovs[i].SetLen(bufSize)
		h := &l.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		h.Namelen = unix.SizeofSockaddrNetlink
		h.Iov = &l.iovs[i]
		h.SetIovlen(1)
	}
}

// ReceiveBuffer returns the receive buffer the kernel granted (it reports
// twice the requested size, counting its bookkeeping).
func (l *Listener) ReceiveBuffer() (int, error) { return l.conn.ReadBuffer() }

// SetGroups joins and leaves groups so that the socket is a member of
// exactly groups. Joining group 1 does not subscribe to process events.
func (l *Listener) SetGroups(groups []int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range groups {
		if slices.Contains(l.groups, g) {
			continue
		}
		if err := l.conn.JoinGroup(uint32(g)); err != nil {
			return &OpError{Op: fmt.Sprintf("join group %d", g), Err: err}
		}
		l.groups = append(l.groups, g)
		l.log.Info("joined group", zap.Int("group", g))
	}
	for _, g := range slices.Clone(l.groups) {
		if slices.Contains(groups, g) {
			continue
		}
		if err := l.conn.LeaveGroup(uint32(g)); err != nil {
			return &OpError{Op: fmt.Sprintf("leave group %d", g), Err: err}
		}
		l.groups = slices.DeleteFunc(l.groups, func(x int) bool { return x == g })
		l.log.Info("left group", zap.Int("group", g))
	}
	return nil
}

// Groups returns the groups joined.
func (l *Listener) Groups() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.groups)
}

// Subscribed reports whether the process connector subscription is
// acknowledged, or true when group 1 is not joined (nothing to subscribe).
func (l *Listener) Subscribed() bool { return l.subscribed.Load() }

// Subscribe performs the process connector handshake when group 1 is
// joined: PROC_CN_MCAST_LISTEN, then waits for the kernel's acknowledgement
// (what none, ack = ours + 1). With a narrower event mask it then sends the
// filter (Linux ≥ 6.6), which the kernel does not acknowledge. Run must be
// running, since the acknowledgement arrives on the receive path.
func (l *Listener) Subscribe(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.groups, ProcGroup) {
		l.subscribed.Store(true)
		return nil
	}
	if err := l.listenAcked(ctx, cnmsg.ProcAll); err != nil {
		return err
	}
	l.procOn = true
	if l.mask != cnmsg.ProcAll {
		if err := l.sendOp(cnmsg.McastListen, l.mask, l.seq.Add(1)); err != nil {
			return err
		}
		l.log.Info("kernel-side process event filter set", zap.Uint32("event_type", uint32(l.mask)))
	}
	l.subscribed.Store(true)
	return nil
}

// Unsubscribe sends PROC_CN_MCAST_IGNORE (after group 1 was left).
func (l *Listener) Unsubscribe() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.procOn {
		return nil
	}
	l.procOn = false
	return l.sendOp(cnmsg.McastIgnore, cnmsg.ProcAll, l.seq.Add(1))
}

// SetReceiveBuffer changes the socket's receive buffer (SO_RCVBUFFORCE).
func (l *Listener) SetReceiveBuffer(n int) error {
	if err := l.conn.SetReadBuffer(n); err != nil {
		return &OpError{Op: "set-receive-buffer", Err: err}
	}
	return nil
}

// SetProcMask changes the kernel-side process event filter on the live
// socket, without leaving the group (no gap in the stream).
func (l *Listener) SetProcMask(ctx context.Context, mask cnmsg.What) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mask == l.mask {
		return nil
	}
	l.mask = mask
	if !l.procOn {
		return nil
	}
	if mask == cnmsg.ProcAll {
		return l.listenAcked(ctx, mask)
	}
	return l.sendOp(cnmsg.McastListen, mask, l.seq.Add(1))
}

func (l *Listener) listenAcked(ctx context.Context, mask cnmsg.What) error {
	ack := l.seq.Add(1)
	select { // forget a stale signal
	case <-l.ackCh:
	default:
	}
	l.waitAck.Store(ack + 2) // the kernel answers ack+1; stored +1 so 0 means none
	defer l.waitAck.Store(0)
	if err := l.sendOp(cnmsg.McastListen, mask, ack); err != nil {
		return err
	}
	t := time.NewTimer(l.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-l.ackCh:
		l.log.Info("subscribed to process events", zap.Uint32("ack", ack))
		return nil
	case <-t.C:
		return fmt.Errorf("%w: no answer within %s", ErrNoAck, l.cfg.HandshakeTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Listener) sendOp(op uint32, mask cnmsg.What, ack uint32) error {
	data := cnmsg.AppendMcastOp(nil, op, mask)
	msg := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{
		ID:  cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc},
		Seq: ack, Ack: ack,
	}, data)
	if err := l.send(msg, 0); err != nil {
		return &OpError{Op: "send process connector op", Err: err}
	}
	return nil
}

func (l *Listener) send(b []byte, group int) error {
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if group > 0 {
		sa.Groups = 1 << (group - 1)
	}
	var serr error
	err := l.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, sa)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// Run receives until ctx ends, handing each batch to h. ENOBUFS is counted
// and the loop goes on.
//
// At the process's own scheduling the reader waits for datagrams in Go's
// network poller, like any goroutine. Given a realtime priority
// (SetPriority), it takes an OS thread of its own at that priority and
// waits in poll(2) on it: the kernel then wakes this very thread when a
// datagram arrives, and the priority counts from the wake on (in the
// network poller another thread, at normal priority, would have to run
// first to notice). That wait costs more per wake-up (the blocking system
// call hands the thread's P over and back), so it is taken only with the
// priority. The handler runs on the reader's thread. Before Run returns
// the thread gets its scheduling back.
func (l *Listener) Run(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() {
		l.kickReader()
		l.conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	defer l.schedule(0)
	var sock int
	if err := l.raw.Control(func(fd uintptr) { sock = int(fd) }); err != nil {
		return &OpError{Op: "recvmmsg", Err: err}
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		l.schedule(int(l.want.Load()))
		var read bool
		if l.rt > 0 {
			read = l.recv(uintptr(sock))
		} else {
			var err error
			if read, err = l.pollRecv(ctx); err != nil {
				return err
			}
		}
		if !read {
			if l.wake.Swap(false) {
				h(nil, time.Now())
				continue
			}
			if l.rt > 0 {
				if err := l.wait(sock); err != nil {
					return err
				}
			}
			continue
		}
		got, err := l.result()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			return &OpError{Op: "recvmmsg", Err: err}
		case got:
			l.deliver(h)
		}
	}
}

// wait blocks in poll(2) on the reader's own thread (it has a realtime
// priority) until the socket may have a datagram, a Wake, a SetPriority
// or the stop kicks the eventfd. poll(2) is level-triggered: a datagram
// that came after the last recv is seen.
func (l *Listener) wait(sock int) error {
	l.fds[0] = unix.PollFd{Fd: int32(sock), Events: unix.POLLIN}
	l.fds[1] = unix.PollFd{Fd: int32(l.kick), Events: unix.POLLIN}
	if _, err := unix.Poll(l.fds[:], -1); err != nil && err != unix.EINTR {
		return &OpError{Op: "poll", Err: err}
	}
	if l.fds[1].Revents != 0 {
		var drain [8]byte
		unix.Read(l.kick, drain[:])
	}
	return nil
}

// pollRecv receives at the process's own scheduling, in Go's network
// poller: the recv runs inside the poller's read callback, after the
// poller has reset its readiness, so that a datagram arriving between an
// empty recv and the wait is never missed (a wait that began with its own
// callback returning false could lose that edge and sleep until the next
// datagram). It returns whether the recv read (or failed); false after a
// Wake, a SetPriority or the stop (a read deadline), or when a Wake was
// pending with the socket empty.
func (l *Listener) pollRecv(ctx context.Context) (bool, error) {
	l.got = false
	err := l.raw.Read(l.recvFn)
	switch {
	case err == nil, ctx.Err() != nil:
		return l.got, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline is cleared before Run looks at what it was, so
		// that one set after it stands; Run checks ctx first, since
		// clearing it may have undone the stop's.
		l.conn.SetReadDeadline(time.Time{})
		return false, nil
	}
	return false, &OpError{Op: "recvmmsg", Err: err}
}

// pollRead is pollRecv's callback: done when the recv read, when a Wake
// waits with the socket empty, or when a SetPriority waits.
func (l *Listener) pollRead(fd uintptr) bool {
	if int(l.want.Load()) != l.asked {
		return true // a SetPriority: Run takes it before reading
	}
	if l.recv(fd) {
		l.got = true
		return true
	}
	return l.wake.Load()
}

// SetPriority asks for the reader's scheduling: prio 1..99 is SCHED_FIFO
// at that priority on an OS thread of its own (the reader then runs as
// soon as a datagram arrives, ahead of the CPU's other work), 0 the
// process's own scheduling. The reader takes it at once if Run runs
// (else when it starts). A realtime priority needs CAP_SYS_NICE or
// RLIMIT_RTPRIO, and in a systemd unit no RestrictRealtime= and
// sched_setattr allowed; when it is refused the listener logs why and the
// reader keeps the process's scheduling. Safe from any goroutine.
func (l *Listener) SetPriority(prio int) {
	if int(l.want.Swap(int32(prio))) == prio {
		return
	}
	l.kickReader()
	l.conn.SetReadDeadline(time.Now())
}

// schedule gives the reader's goroutine prio, on the reader's goroutine:
// for a realtime priority it locks the goroutine to its thread and raises
// the thread; for 0 it gives the thread back its scheduling and unlocks
// it (the thread stays locked, and ends with the goroutine, if that
// fails: no raised thread goes back to the runtime).
func (l *Listener) schedule(prio int) {
	if prio == l.asked {
		return
	}
	l.asked = prio
	if prio > 0 {
		if l.rt == 0 {
			runtime.LockOSThread()
			a, err := unix.SchedGetAttr(0, 0)
			if err != nil {
				a = &unix.SchedAttr{Policy: unix.SCHED_NORMAL}
			}
			l.normal = *a
		}
		err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio)}, 0)
		if err != nil {
			l.log.Warn("the reader may not run at a realtime priority; it keeps the process's scheduling, "+
				"and short-lived processes may end before it reads them (needs CAP_SYS_NICE or RLIMIT_RTPRIO, and, "+
				"in a systemd unit, no RestrictRealtime= and sched_setattr allowed, as deploy/systemd/enrich.conf grants; see listener.reader_priority)",
				zap.Int("priority", prio), zap.Error(err))
			if l.rt == 0 {
				runtime.UnlockOSThread()
			}
			return
		}
		l.rt = prio
		l.log.Info("reader thread runs at SCHED_FIFO", zap.Int("priority", prio))
		return
	}
	if l.rt == 0 {
		return
	}
	if err := unix.SchedSetAttr(0, &l.normal, 0); err != nil {
		l.log.Warn("the reader thread's scheduling could not be restored; it keeps its thread", zap.Error(err))
		return
	}
	l.rt = 0
	runtime.UnlockOSThread()
	l.log.Info("reader runs at the process's scheduling")
}

// kickReader wakes the reader from poll(2) (see wait). Safe after Close
// (it then does nothing).
func (l *Listener) kickReader() {
	l.kickMu.RLock()
	defer l.kickMu.RUnlock()
	if l.kick >= 0 {
		one := [8]byte{1}
		unix.Write(l.kick, one[:])
	}
}

// result reads the outcome of the last recvmmsg: got when it returned
// datagrams; an overrun (ENOBUFS: the kernel dropped messages for this
// socket) is counted, and it and EINTR mean read again.
func (l *Listener) result() (got bool, err error) {
	switch l.errno {
	case 0:
		return true, nil
	case unix.ENOBUFS:
		l.overruns.Add(1)
		return false, nil
	case unix.EINTR:
		return false, nil
	}
	return false, l.errno
}

// Wake makes Run call its handler once with no datagrams, soon, even when
// the socket stays quiet: for work that has no kernel message to ride on
// (exit_lost records found while no process event comes). Safe to call
// from any goroutine, and after Close (it then does nothing).
func (l *Listener) Wake() {
	l.wake.Store(true)
	l.kickReader()
	l.conn.SetReadDeadline(time.Now())
}

// EmptyAt returns a time just before the reader last found the socket
// empty, having handed every datagram it received before to its handler
// (the zero Time: not yet). Whatever the kernel queued for the socket
// before that time has been handled. Safe to call from any goroutine.
func (l *Listener) EmptyAt() time.Time {
	ns := l.emptyAt.Load()
	if ns == 0 {
		return time.Time{}
	}
	return l.base.Add(time.Duration(ns))
}

// deliver hands the l.n datagrams the last recvmmsg read to h.
func (l *Listener) deliver(h Handler) {
	now := time.Now()
	n := l.n
	batch := l.dgrams[:n]
	for i := 0; i < n; i++ {
		hd := &l.hdrs[i]
		size := int(hd.Len)
		trunc := hd.Hdr.Flags&unix.MSG_TRUNC != 0
		if size > bufSize {
			size = bufSize
		}
		batch[i] = cnmsg.Datagram{Data: l.bufs[i][:size], Sender: l.names[i].Pid, Truncated: trunc}
		if trunc {
			l.truncated.Add(1)
		}
		if w := l.waitAck.Load(); w != 0 && l.names[i].Pid == 0 {
			l.checkAck(batch[i].Data, w-1)
		}
		// Reset for the next call.
		hd.Hdr.Namelen = unix.SizeofSockaddrNetlink
		hd.Hdr.Flags = 0
	}
	l.received.Add(uint64(n))
	l.syscalls.Add(1)
	h(batch, now)
}

// Drain ends the subscription and reads what the socket still holds: it
// sends PROC_CN_MCAST_IGNORE, leaves every group (nothing new is queued
// from then on; what is queued stays) and hands each batch to h until the
// socket is empty or deadline passes. Call it after Run has returned, on
// the goroutine that ran it. It returns the datagrams read and whether the
// socket was left empty.
func (l *Listener) Drain(h Handler, deadline time.Time) (n uint64, empty bool, err error) {
	var errs []error
	if err := l.Unsubscribe(); err != nil {
		errs = append(errs, err)
	}
	if err := l.SetGroups(nil); err != nil {
		errs = append(errs, err)
	}
	for time.Now().Before(deadline) {
		var again bool
		cerr := l.raw.Control(func(fd uintptr) {
			if !l.recv(fd) {
				again = true
			}
		})
		if cerr != nil {
			errs = append(errs, &OpError{Op: "recvmmsg (drain)", Err: cerr})
			return n, false, errors.Join(errs...)
		}
		if again {
			return n, true, errors.Join(errs...)
		}
		got, err := l.result()
		if err != nil {
			errs = append(errs, &OpError{Op: "recvmmsg (drain)", Err: err})
			return n, false, errors.Join(errs...)
		}
		if got {
			n += uint64(l.n)
			l.deliver(h)
		}
	}
	return n, false, errors.Join(errs...)
}

// recv makes one non-blocking recvmmsg. It returns false when the socket
// is empty, after noting when (see EmptyAt).
func (l *Listener) recv(fd uintptr) bool {
	before := time.Since(l.base)
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&l.hdrs[0])), uintptr(len(l.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		l.emptyAt.Store(int64(max(before, 1)))
		l.empties.Add(1)
		return false
	}
	l.n, l.errno = int(n), e
	return true
}

func (l *Listener) checkAck(b []byte, want uint32) {
	m, err := cnmsg.Decode(b)
	if err != nil || !m.ID.IsProc() || m.Ack != want {
		return
	}
	ev, err := cnmsg.DecodeProc(m.Data)
	if err != nil || ev.What != cnmsg.ProcNone {
		return
	}
	if ev.Err != 0 {
		l.log.Error("process connector refused the subscription", zap.Uint32("err", ev.Err))
		return
	}
	select {
	case l.ackCh <- struct{}{}:
	default:
	}
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Received:  l.received.Load(),
		Overruns:  l.overruns.Load(),
		Truncated: l.truncated.Load(),
		Syscalls:  l.syscalls.Load(),
		Empty:     l.empties.Load(),
	}
}

// Drops returns the kernel's count of messages dropped for this socket
// (SO_MEMINFO, SK_MEMINFO_DROPS).
func (l *Listener) Drops() (uint64, error) {
	var info [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err := l.raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, &OpError{Op: "getsockopt SO_MEMINFO", Err: err}
	}
	return uint64(info[unix.SK_MEMINFO_DROPS]), nil
}

// Close unsubscribes from process events (PROC_CN_MCAST_IGNORE) and closes
// the socket.
func (l *Listener) Close() error {
	l.mu.Lock()
	var errs []error
	if l.procOn {
		if err := l.sendOp(cnmsg.McastIgnore, cnmsg.ProcAll, l.seq.Add(1)); err != nil {
			errs = append(errs, err)
		}
		l.procOn = false
	}
	l.mu.Unlock()
	if err := l.conn.Close(); err != nil {
		errs = append(errs, &OpError{Op: "close", Err: err})
	}
	l.kickMu.Lock()
	if l.kick >= 0 {
		unix.Close(l.kick)
		l.kick = -1
	}
	l.kickMu.Unlock()
	return errors.Join(errs...)
}
