package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

type jspubResult struct {
	Received  uint64  `json:"received"`
	Published uint64  `json:"published"`
	Failed    uint64  `json:"failed"` // publishes the stream did not acknowledge
	SeqLost   uint64  `json:"seq_lost"`
	Drops     uint64  `json:"drops"`
	CPUSecs   float64 `json:"cpu_seconds"`
	BodyBytes int     `json:"body_bytes"`
	IDBytes   int     `json:"id_bytes"`
}

// benchLine is the JSON line the daemon writes for a synthetic message
// with a seq and sender port of typical width: the raw publisher's body
// is as long.
func benchLine(host string) []byte {
	r := event.Record{Time: time.Now().UnixNano(), Sender: 1234567, Msg: cnmsg.Message{
		ID: cnmsg.ID{Idx: benchIdx, Val: benchVal}, Seq: 1000000, Len: payloadLen, Data: make([]byte, payloadLen)}}
	b := event.NewEncoder(host).AppendJSON(nil, &r)
	return b[:len(b)-1]
}

// cmdJSPub is the JetStream baseline the daemon's JetStream sink is
// compared with, like with like: a process of its own, pinned to the
// daemon's CPU, that reads the synthetic messages from a connector socket
// as the bare reader does and publishes each with the raw nats.go
// JetStream async publisher — a body as long as the daemon's JSON line for
// it, a unique Nats-Msg-Id shaped like the sink's, at most --max-pending
// unacknowledged (the sink's max_in_flight). It prints "ready", publishes
// until SIGTERM and the socket has been idle for 100 ms, waits for every
// acknowledgement, and prints its result as JSON.
func cmdJSPub(args []string) error {
	fs := flag.NewFlagSet("jspub", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server")
	subject := fs.String("subject", "cnbenchraw.x", "subject (the stream's)")
	host := fs.String("host", "", "host name for the body and ids (default: this machine's)")
	maxPending := fs.Int("max-pending", 4096, "unacknowledged publishes at most")
	rcvbuf := fs.Int("rcvbuf", 32<<20, "SO_RCVBUFFORCE bytes")
	batch := fs.Int("batch", 64, "datagrams per recvmmsg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *host == "" {
		*host, _ = os.Hostname()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var stopping atomic.Bool
	go func() { <-stop; stopping.Store(true) }()

	nc, err := nats.Connect(*url)
	if err != nil {
		return err
	}
	defer nc.Close()
	var failed atomic.Uint64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(*maxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return err
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	prefix := strings.TrimSpace(string(boot)) + ":" + *host + ":out:" + strconv.Itoa(benchIdx) + "." + strconv.Itoa(benchVal) + "@"
	line := benchLine(*host)

	fd, err := readerSocket(benchGroup, *rcvbuf)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	n := *batch
	hdrs, bufs := recvBatch(n)
	var (
		res  jspubResult
		have bool
		want uint32
		id   []byte
	)
	fmt.Println("ready")
	ru0 := cpuSelf()
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), unix.MSG_WAITFORONE, 0, 0)
		if e != 0 {
			switch e {
			case unix.ENOBUFS, unix.EINTR:
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
			if ne.Uint32(b[16:]) != benchIdx || ne.Uint32(b[20:]) != benchVal {
				continue
			}
			seq := ne.Uint32(b[24:])
			if have && seq > want {
				res.SeqLost += uint64(seq - want)
			}
			have, want = true, seq+1
			res.Received++
			id = strconv.AppendUint(append(id[:0], prefix...), 1234567, 10) // a sender port as wide as benchLine's
			id = strconv.AppendInt(append(id, ":t"...), now, 10)
			id = strconv.AppendUint(append(id, ':'), uint64(seq), 10)
			m := &nats.Msg{Subject: *subject, Data: append([]byte(nil), line...), Header: nats.Header{nats.MsgIdHdr: []string{string(id)}}}
			for {
				_, err := js.PublishMsgAsync(m)
				if err == nil {
					res.Published++
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return err
				}
			}
		}
	}
done:
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%d publishes unacknowledged after 60s", js.PublishAsyncPending())
	}
	res.Failed = failed.Load()
	res.CPUSecs = cpuSelf() - ru0
	res.Drops = meminfoDrops(fd)
	res.BodyBytes, res.IDBytes = len(line), len(id)
	return json.NewEncoder(os.Stdout).Encode(res)
}
