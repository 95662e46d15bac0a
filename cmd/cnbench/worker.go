package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
)

// The worker subcommands run in their own processes (the harness re-executes
// itself) so that sending, reading and the daemon never share a process.

// payloadLen is the synthetic message payload: send time (CLOCK_REALTIME ns,
// 8 bytes), message index (8 bytes), padding.
const payloadLen = 64

type sendResult struct {
	Sent    int     `json:"sent"`
	Seconds float64 `json:"seconds"`
	Retries int     `json:"retries"`
}

// cmdSend multicasts synthetic connector messages as fast as asked.
func cmdSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	group := fs.Int("group", benchGroup, "multicast group")
	idx := fs.Uint("idx", benchIdx, "cn_msg idx")
	val := fs.Uint("val", benchVal, "cn_msg val")
	count := fs.Int("count", 100000, "messages")
	rate := fs.Float64("rate", 0, "messages per second (0: unpaced)")
	prof := fs.String("cpuprofile", "", "write a CPU profile")
	maxDur := fs.Duration("max-duration", 0, "stop after this long even if count is not reached (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, netlinkConnector)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	sa := unix.RawSockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (*group - 1)}
	// sendmmsg in batches: the syscall entry, not the multicast, dominates a
	// send on this VM. A batch is at most 100 µs of the paced rate.
	const maxBatch = 64
	const seqOff, dataOff = cnmsg.NlmsgHdrLen + 8, cnmsg.NlmsgHdrLen + cnmsg.HeaderLen
	bufs := make([][]byte, maxBatch)
	iovs := make([]unix.Iovec, maxBatch)
	hdrs := make([]mmsghdr, maxBatch)
	for i := range bufs {
		bufs[i] = cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: uint32(*idx), Val: uint32(*val)}}, make([]byte, payloadLen))
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(len(bufs[i]))
		hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&sa))
		hdrs[i].hdr.Namelen = unix.SizeofSockaddrNetlink
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	batch := maxBatch
	if *rate > 0 {
		batch = min(maxBatch, max(1, int(*rate/10000)))
	}
	var res sendResult
	start := time.Now()
	for i := 0; i < *count; {
		if *maxDur > 0 && i%4096 < batch && time.Since(start) > *maxDur {
			*count = i
			break
		}
		if *rate > 0 {
			due := start.Add(time.Duration(float64(i) / *rate * 1e9))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		n := min(batch, *count-i)
		now := uint64(time.Now().UnixNano())
		for j := range n {
			binary.NativeEndian.PutUint32(bufs[j][seqOff:], uint32(i+j))
			binary.NativeEndian.PutUint64(bufs[j][dataOff:], now)
			binary.NativeEndian.PutUint64(bufs[j][dataOff+8:], uint64(i+j))
		}
		for off := 0; off < n; {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[off])), uintptr(n-off), 0, 0, 0)
			if e == 0 {
				off += int(r)
				continue
			}
			if e == unix.EINTR || e == unix.ENOBUFS || e == unix.EAGAIN {
				res.Retries++
				time.Sleep(20 * time.Microsecond)
				continue
			}
			return fmt.Errorf("sendmmsg: %w", e)
		}
		i += n
	}
	res.Sent = *count
	res.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

type readResult struct {
	Received  uint64   `json:"received"`    // messages with the benchmark id (or process events)
	SeqLost   uint64   `json:"seq_lost"`    // gaps in seq (per CPU for process events)
	Drops     uint64   `json:"drops"`       // SK_MEMINFO_DROPS
	Overruns  uint64   `json:"overruns"`    // ENOBUFS returns
	CPUSecs   float64  `json:"cpu_seconds"` // user+system from ready to exit
	HWMKiB    uint64   `json:"vmhwm_kib"`
	Latency   *latency `json:"latency,omitempty"`
	ProcAcked bool     `json:"proc_acked,omitempty"`
}

// cmdReader is the baseline: a bare recvmmsg reader with reused buffers and
// no decoding beyond the fields it counts. It prints "ready", reads until
// SIGTERM and then until the socket has been idle for 100 ms, and prints
// its result as JSON.
func cmdReader(args []string) error {
	fs := flag.NewFlagSet("reader", flag.ContinueOnError)
	group := fs.Int("group", benchGroup, "multicast group (1: process events, with the LISTEN handshake)")
	idx := fs.Uint("idx", benchIdx, "cn_msg idx to count")
	val := fs.Uint("val", benchVal, "cn_msg val to count")
	rcvbuf := fs.Int("rcvbuf", 32<<20, "SO_RCVBUFFORCE bytes")
	batch := fs.Int("batch", 64, "datagrams per recvmmsg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var stopping atomic.Bool
	go func() { <-stop; stopping.Store(true) }()

	fd, err := readerSocket(*group, *rcvbuf)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	proc := *group == 1
	if proc {
		*idx, *val = cnmsg.IdxProc, cnmsg.ValProc
		op := cnmsg.AppendMcastOp(nil, cnmsg.McastListen, cnmsg.ProcAll)
		msg := cnmsg.AppendMessage(nil, 0, 0, cnmsg.Header{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 1, Ack: 1}, op)
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("proc connector listen: %w", err)
		}
	}

	n := *batch
	hdrs, bufs := recvBatch(n)
	var (
		res  readResult
		h    hist
		next = map[uint32]uint32{} // process events: next seq per CPU
		have bool
		want uint32 // synthetic: next seq
	)
	fmt.Println("ready")
	ru0 := cpuSelf()
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), unix.MSG_WAITFORONE, 0, 0)
		if e != 0 {
			switch e {
			case unix.ENOBUFS:
				res.Overruns++
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				if stopping.Load() {
					goto done
				}
				continue
			}
			return fmt.Errorf("recvmmsg: %w", e)
		}
		now := time.Now().UnixNano()
		for i := range int(r) {
			b := bufs[i][:hdrs[i].len]
			if len(b) < cnmsg.NlmsgHdrLen+cnmsg.HeaderLen {
				continue
			}
			ne := binary.NativeEndian
			if ne.Uint32(b[16:]) != uint32(*idx) || ne.Uint32(b[20:]) != uint32(*val) {
				continue
			}
			seq := ne.Uint32(b[24:])
			data := b[36:]
			if proc {
				if len(data) < 8 {
					continue
				}
				if ne.Uint32(data) == 0 { // what none: the ack
					res.ProcAcked = true
				}
				cpu := ne.Uint32(data[4:])
				if s, ok := next[cpu]; ok && seq > s {
					res.SeqLost += uint64(seq - s)
				}
				next[cpu] = seq + 1
				res.Received++
				continue
			}
			if have && seq > want {
				res.SeqLost += uint64(seq - want)
			}
			have, want = true, seq+1
			if len(data) >= 8 {
				h.add(now - int64(ne.Uint64(data)))
			}
			res.Received++
		}
	}
done:
	res.CPUSecs = cpuSelf() - ru0
	res.Drops = meminfoDrops(fd)
	res.HWMKiB = statusKiB(os.Getpid(), "VmHWM")
	res.Latency = h.summary()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// forkExit forks a child that exits at once. The child runs only the raw
// exit_group system call, so it never touches the Go runtime it copied.
//
//go:norace
//go:nosplit
func forkExit() (int, bool) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, false
	}
	if r == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(r), true
}

// mmsghdr mirrors struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// readerSocket opens a connector socket for a bare reader: bound to group,
// with an rcvbuf-byte receive buffer (SO_RCVBUFFORCE) and a 100 ms receive
// timeout, so that the reader sees a stop while the socket is quiet.
func readerSocket(group, rcvbuf int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, netlinkConnector)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVBUFFORCE: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (group - 1)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	return fd, nil
}

// recvBatch returns n message headers for recvmmsg, each pointing at its
// own 2 KiB buffer in bufs.
func recvBatch(n int) ([]mmsghdr, [][]byte) {
	hdrs := make([]mmsghdr, n)
	iovs := make([]unix.Iovec, n)
	bufs := make([][]byte, n)
	for i := range n {
		bufs[i] = make([]byte, 2048)
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(len(bufs[i]))
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	return hdrs, bufs
}

func cpuSelf() float64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func meminfoDrops(fd int) uint64 {
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return 0
	}
	return uint64(info[unix.SK_MEMINFO_DROPS])
}

type stormResult struct {
	Processes int     `json:"processes"`
	Threads   int     `json:"threads"`
	Seconds   float64 `json:"seconds"`
}

// cmdStorm makes process events as fast as the machine allows, for a fixed
// time. Workers take turns: fork children that exit at once (fork and exit
// events), fork and exec /bin/true (fork, exec, comm, exit), and churn
// threads (clone and exit events).
func cmdStorm(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Second, "how long")
	workers := fs.Int("workers", 4, "concurrent fork/exec loops")
	bin := fs.String("exec", "/bin/true", "program the exec loops run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	var threads atomic.Int64
	for w := range *workers {
		wg.Add(1)
		if w%3 == 2 {
			// Thread churn: a goroutine that exits while locked to its OS
			// thread takes the thread with it, and the next one needs a new
			// thread: clone (a fork event) and exit events, cheaper than a
			// process.
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					done := make(chan struct{})
					go func() {
						runtime.LockOSThread()
						close(done)
					}()
					<-done
					threads.Add(1)
				}
			}()
			continue
		}
		if w%3 == 0 {
			// fork + _exit: fork and exit events, as fast as the kernel forks.
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				for time.Now().Before(deadline) {
					pid, ok := forkExit()
					if !ok {
						continue
					}
					var ws syscall.WaitStatus
					syscall.Wait4(pid, &ws, 0, nil)
					total.Add(1)
				}
			}()
			continue
		}
		// fork + exec: fork, exec, comm and exit events.
		go func() {
			defer wg.Done()
			attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
			for time.Now().Before(deadline) {
				pid, err := syscall.ForkExec(*bin, []string{*bin}, attr)
				if err != nil {
					if errors.Is(err, syscall.EAGAIN) {
						continue
					}
					once.Do(func() { firstErr = err })
					return
				}
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return json.NewEncoder(os.Stdout).Encode(stormResult{Processes: int(total.Load()), Threads: int(threads.Load()), Seconds: time.Since(start).Seconds()})
}
