// Package requests lets NATS clients send connector messages to the
// kernel and get the kernel's reply back, following the connector's message
// genealogy: each request gets a fresh seq and a random ack; a reply carries
// the same id, the same seq and ack + 1. (The process connector numbers its
// acknowledgements from a per-CPU counter instead, so for it only ack + 1
// is matched.)
//
// Only configured ids can be sent; each maps one NATS subject to one id.
// Requests are sent from a socket of their own, so that a request such as
// the process connector's IGNORE changes that socket's subscription, never
// the listener's.
//
// The feature lives here whole: config.go is the requests: section (its
// keys, defaults and validation), requests.go the server, and the
// subpackage reqtable the pure table that matches replies to pending
// requests. The daemon only wires it in (internal/daemon/requests.go: the
// NATS sink's connection, the request socket, the reply groups).
package requests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/requests/reqtable"
)

// MaxPayload is the largest request body: a connector message holds at most
// CONNECTOR_MAX_MSG_SIZE bytes with its header.
const MaxPayload = cnmsg.MaxMsgSize - cnmsg.HeaderLen

// Sender sends a datagram to the kernel (netlink port id 0).
type Sender interface {
	SendKernel(datagram []byte) error
}

// UnicastReader reads the datagrams sent to its socket's own port id (the
// replies to what it sent), calling h for each until ctx ends.
type UnicastReader interface {
	ReadUnicast(ctx context.Context, h func(datagram []byte, sender uint32)) error
}

// Header names.
const (
	HdrError = "Cn-Error"
	HdrIdx   = "Cn-Idx"
	HdrVal   = "Cn-Val"
	HdrSeq   = "Cn-Seq"
	HdrAck   = "Cn-Ack"
	HdrFlags = "Cn-Flags"
	HdrLen   = "Cn-Len"
	// The request's own seq and ack, on replies: a reply's Cn-Ack is
	// Cn-Request-Ack + 1.
	HdrReqSeq = "Cn-Request-Seq"
	HdrReqAck = "Cn-Request-Ack"
)

// Errors sent back in Cn-Error.
const (
	ErrTimeout     = "timeout"
	ErrTooLarge    = "too_large"
	ErrRateLimited = "rate_limited"
	ErrIDNotAllow  = "id_not_allowed"
	ErrBadRequest  = "bad_request"
	ErrBusy        = "busy"
	ErrSend        = "send_failed"
	ErrNoReplyTo   = "no_reply_subject"
	ErrShutdown    = "shutdown"
)

type pending struct {
	reply    string // the requester's inbox
	entry    *entryState
	start    time.Time
	seq, ack uint32 // the request's
}

type entryState struct {
	*Config
	lim     *rate.Limiter
	ackOnly bool
}

// Server serves the configured request subjects.
type Server struct {
	entries []*entryState
	nc      *nats.Conn
	snd     Sender
	enc     *event.Encoder
	log     *zap.Logger

	mu    sync.Mutex
	table *reqtable.Table[pending]
	seqs  *reqtable.SeqSource
	wake  chan struct{} // a new deadline
	npend atomic.Int64
	// Immutable: ids with requests, for the reader's quick check, and
	// whether each is matched by ack alone.
	ids     []cnmsg.ID
	ackOnly []bool

	replies chan reply
	sent    *prometheus.CounterVec
	results *prometheus.CounterVec
	rtt     prometheus.Histogram
}

type reply struct {
	p    pending
	msg  cnmsg.Message // Data copied
	recv time.Time
}

// MaxPending bounds the requests waiting for replies.
const MaxPending = 4096

// New returns a server for entries (validated, with NATSSubject set);
// Run subscribes.
func New(entries []Config, nc *nats.Conn, snd Sender, enc *event.Encoder, reg prometheus.Registerer, log *zap.Logger) (*Server, error) {
	s := &Server{
		nc: nc, snd: snd, enc: enc, log: log.Named("requests"),
		table:   reqtable.New[pending](MaxPending),
		seqs:    reqtable.NewSeqSource(),
		wake:    make(chan struct{}, 1),
		replies: make(chan reply, 1024),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_requests_total",
			Help: "Connector requests from NATS by subject and result: replied, timeout, too_large, rate_limited, id_not_allowed, bad_request, busy, send_failed, no_reply_subject, shutdown.",
		}, []string{"subject", "result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_requests_sent_total",
			Help: "Connector messages sent to the kernel for NATS requests, by subject.",
		}, []string{"subject"}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cnbridged_request_duration_seconds",
			Help:    "From a request's arrival to its reply's publication.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.NATSSubject] {
			return nil, fmt.Errorf("requests: subject %s configured twice", e.NATSSubject)
		}
		seen[e.NATSSubject] = true
		st := &entryState{Config: &e, lim: rate.NewLimiter(rate.Inf, 0), ackOnly: e.ackOnly()}
		// Every result is exported from the start, at zero.
		s.sent.WithLabelValues(e.NATSSubject)
		for _, r := range []string{"replied", ErrTimeout, ErrTooLarge, ErrRateLimited, ErrIDNotAllow,
			ErrBadRequest, ErrBusy, ErrSend, ErrNoReplyTo, ErrShutdown} {
			s.results.WithLabelValues(e.NATSSubject, r)
		}
		if e.RateLimit > 0 {
			st.lim = rate.NewLimiter(rate.Limit(e.RateLimit), max(e.Burst, 1))
		}
		s.entries = append(s.entries, st)
		if i := slices.Index(s.ids, e.CnID); i >= 0 {
			if s.ackOnly[i] != st.ackOnly {
				return nil, fmt.Errorf("requests: id %d.%d is matched both by seq and ack and by ack alone", e.CnID.Idx, e.CnID.Val)
			}
			continue
		}
		s.ids = append(s.ids, e.CnID)
		s.ackOnly = append(s.ackOnly, st.ackOnly)
	}
	reg.MustRegister(s.results, s.sent, s.rtt)
	return s, nil
}

// Run subscribes to every request subject and serves until ctx ends; then
// it answers what is still pending with Cn-Error: shutdown.
func (s *Server) Run(ctx context.Context) error {
	var subs []*nats.Subscription
	for _, e := range s.entries {
		sub, err := s.nc.Subscribe(e.NATSSubject, func(m *nats.Msg) { s.handle(e, m) })
		if err != nil {
			for _, sb := range subs {
				sb.Unsubscribe()
			}
			return fmt.Errorf("requests: subscribe %s: %w", e.NATSSubject, err)
		}
		subs = append(subs, sub)
		s.log.Info("serving connector requests", zap.String("subject", e.NATSSubject),
			zap.Uint32("idx", e.CnID.Idx), zap.Uint32("val", e.CnID.Val), zap.Duration("timeout", e.Timeout))
	}
	defer func() {
		for _, sb := range subs {
			sb.Unsubscribe()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var expired []reqtable.Expired[pending]
	for {
		s.mu.Lock()
		next, ok := s.table.NextDeadline()
		s.mu.Unlock()
		d := time.Hour
		if ok {
			d = max(time.Until(next), 0)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			expired = s.table.Expire(time.Unix(1<<40, 0), expired[:0])
			s.npend.Store(0)
			s.mu.Unlock()
			for _, x := range expired {
				s.fail(x.Value.entry, x.Value.reply, ErrShutdown)
			}
			return nil
		case <-s.wake:
		case r := <-s.replies:
			s.publishReply(r)
		case now := <-timer.C:
			s.mu.Lock()
			expired = s.table.Expire(now, expired[:0])
			s.npend.Add(-int64(len(expired)))
			s.mu.Unlock()
			for _, x := range expired {
				s.fail(x.Value.entry, x.Value.reply, ErrTimeout)
				s.log.Info("connector request timed out", zap.String("subject", x.Value.entry.NATSSubject),
					zap.Uint32("seq", x.Key.Seq), zap.Uint32("ack", x.Key.Ack))
			}
		}
	}
}

// handle turns one NATS request into one connector message.
func (s *Server) handle(e *entryState, m *nats.Msg) {
	start := time.Now()
	if m.Reply == "" {
		s.count(e, ErrNoReplyTo)
		return
	}
	data, flags, err := decodeBody(e.Format, m)
	switch {
	case err != nil:
		s.fail(e, m.Reply, ErrBadRequest)
		return
	case len(data) > MaxPayload:
		s.fail(e, m.Reply, ErrTooLarge)
		return
	case !idAllowed(e, m):
		s.fail(e, m.Reply, ErrIDNotAllow)
		return
	case !e.lim.Allow():
		s.fail(e, m.Reply, ErrRateLimited)
		return
	}
	id := reqtable.ID{Idx: e.CnID.Idx, Val: e.CnID.Val}
	s.mu.Lock()
	k, err := s.seqs.Next(id, s.table)
	if err == nil {
		tk := k
		if e.ackOnly {
			tk.Seq = k.Ack // the table is keyed by ack for ack-only ids
		}
		err = s.table.Add(tk, pending{reply: m.Reply, entry: e, start: start, seq: k.Seq, ack: k.Ack}, start.Add(e.Timeout))
		k.ID = tk.ID
		if err == nil {
			s.npend.Add(1)
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(e, m.Reply, ErrBusy)
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	dg := cnmsg.AppendMessage(nil, k.Seq, 0, cnmsg.Header{ID: e.CnID, Seq: k.Seq, Ack: k.Ack, Flags: flags}, data)
	s.log.Info("connector request", zap.String("subject", e.NATSSubject), zap.Uint32("idx", e.CnID.Idx),
		zap.Uint32("val", e.CnID.Val), zap.Uint32("seq", k.Seq), zap.Uint32("ack", k.Ack), zap.Int("len", len(data)))
	err = s.snd.SendKernel(dg)
	if err == nil {
		s.sent.WithLabelValues(e.NATSSubject).Inc()
	}
	if err != nil {
		s.mu.Lock()
		tk := k
		if e.ackOnly {
			tk.Seq = k.Ack
		}
		if _, ok := s.table.Remove(tk); ok {
			s.npend.Add(-1)
		}
		s.mu.Unlock()
		s.log.Warn("sending a connector request failed", zap.String("subject", e.NATSSubject), zap.Error(err))
		s.fail(e, m.Reply, ErrSend)
	}
}

func idAllowed(e *entryState, m *nats.Msg) bool {
	for _, h := range []struct {
		name string
		want uint32
	}{{HdrIdx, e.CnID.Idx}, {HdrVal, e.CnID.Val}} {
		if v := m.Header.Get(h.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || uint32(n) != h.want {
				return false
			}
		}
	}
	return true
}

func decodeBody(format string, m *nats.Msg) (data []byte, flags uint16, err error) {
	if format == "json" {
		var body struct {
			Data  string `json:"data"`
			Flags uint16 `json:"flags"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			return nil, 0, err
		}
		data, err := base64.StdEncoding.DecodeString(body.Data)
		return data, body.Flags, err
	}
	if v := m.Header.Get(HdrFlags); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, 0, err
		}
		flags = uint16(n)
	}
	return m.Data, flags, nil
}

// ReadReplies offers the server every kernel message r reads (the
// replies sent to the request socket's own port id) until ctx ends.
func (s *Server) ReadReplies(ctx context.Context, r UnicastReader) error {
	return r.ReadUnicast(ctx, func(dg []byte, sender uint32) {
		if sender != 0 {
			return // not the kernel's
		}
		if m, err := cnmsg.Decode(dg); err == nil {
			s.Offer(m, time.Now())
		}
	})
}

// IDs returns the ids requests are sent to.
func (s *Server) IDs() []cnmsg.ID { return s.ids }

// Offer is called for every message received from the kernel (on the
// reader goroutine): a reply to a pending request is handed to the
// publisher and true returned. It never blocks.
func (s *Server) Offer(m cnmsg.Message, now time.Time) bool {
	if s.npend.Load() == 0 {
		return false
	}
	i := slices.Index(s.ids, m.ID)
	if i < 0 {
		return false
	}
	ackOnly := s.ackOnly[i]
	id := reqtable.ID{Idx: m.ID.Idx, Val: m.ID.Val}
	seq := m.Seq
	if ackOnly {
		seq = m.Ack - 1 // ack-only ids are keyed by the request's ack
	}
	s.mu.Lock()
	p, ok := s.table.Match(id, seq, m.Ack, now)
	if ok {
		s.npend.Add(-1)
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	r := reply{p: p, msg: m, recv: now}
	r.msg.Data = append([]byte(nil), m.Data...)
	select {
	case s.replies <- r:
	default:
		// The publisher is far behind; the requester will time out.
		s.count(p.entry, ErrBusy)
	}
	return true
}

func (s *Server) publishReply(r reply) {
	e := r.p.entry
	out := nats.NewMsg(r.p.reply)
	out.Header.Set(HdrIdx, strconv.FormatUint(uint64(r.msg.ID.Idx), 10))
	out.Header.Set(HdrVal, strconv.FormatUint(uint64(r.msg.ID.Val), 10))
	out.Header.Set(HdrSeq, strconv.FormatUint(uint64(r.msg.Seq), 10))
	out.Header.Set(HdrAck, strconv.FormatUint(uint64(r.msg.Ack), 10))
	out.Header.Set(HdrFlags, strconv.FormatUint(uint64(r.msg.Flags), 10))
	out.Header.Set(HdrLen, strconv.FormatUint(uint64(r.msg.Len), 10))
	out.Header.Set(HdrReqSeq, strconv.FormatUint(uint64(r.p.seq), 10))
	out.Header.Set(HdrReqAck, strconv.FormatUint(uint64(r.p.ack), 10))
	if e.Format == "json" {
		rec := event.Record{Time: r.recv.UnixNano(), Msg: r.msg}
		if r.msg.ID.IsProc() {
			if ev, err := cnmsg.DecodeProc(r.msg.Data); err == nil {
				rec.Proc, rec.HasProc = ev, true
			}
		}
		out.Data = []byte(strings.TrimSuffix(string(s.enc.AppendJSON(nil, &rec)), "\n"))
	} else {
		out.Data = r.msg.Data
	}
	if err := s.nc.PublishMsg(out); err != nil {
		s.log.Warn("publishing a connector reply failed", zap.String("subject", e.NATSSubject), zap.Error(err))
		s.count(e, ErrSend)
		return
	}
	s.rtt.Observe(time.Since(r.p.start).Seconds())
	s.count(e, "replied")
}

func (s *Server) fail(e *entryState, replyTo, code string) {
	s.count(e, code)
	out := nats.NewMsg(replyTo)
	out.Header.Set(HdrError, code)
	if err := s.nc.PublishMsg(out); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.log.Warn("publishing a request error failed", zap.String("subject", e.NATSSubject), zap.Error(err))
	}
}

func (s *Server) count(e *entryState, result string) {
	s.results.WithLabelValues(e.NATSSubject, result).Inc()
}
