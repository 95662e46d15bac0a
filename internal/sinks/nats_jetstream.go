package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// jsAcker counts JetStream publishes by their acknowledgements, which
// arrive on the sink's own reply subjects (<inbox>.<message id>): at most
// MaxInFlight outstanding, each retried with the same Nats-Msg-Id until
// the stream answers.
type jsAcker struct {
	s   *NATS
	sub *nats.Subscription
	js  jetstream.JetStream // set when the sink manages its stream
	// lastAck is when the latest acknowledgement arrived, or the first
	// message went out into an empty window (under s.mu).
	lastAck time.Time
}

func newJSAcker(s *NATS) (*jsAcker, error) {
	a := &jsAcker{s: s}
	s.inbox = nats.NewInbox() + "."
	var err error
	a.sub, err = s.nc.Subscribe(s.inbox+"*", a.onAck)
	if err == nil {
		err = a.sub.SetPendingLimits(max(65536, 4*s.cfg.MaxInFlight), 64<<20)
	}
	if err == nil && s.cfg.Stream != nil {
		a.js, err = jetstream.New(s.nc)
	}
	return a, err
}

func (a *jsAcker) start() {}

// holdsWhileDown: a JetStream Write waits for room; the runner's queue
// holds the rest.
func (a *jsAcker) holdsWhileDown() bool { return false }

func (a *jsAcker) ackDeadline(now time.Time) time.Time {
	if a.s.l.sent == 0 {
		a.lastAck = now // the window starts waiting now
	}
	return now.Add(a.s.cfg.AckTimeout)
}

func (a *jsAcker) publishedLocked() {}

// confirm does nothing: acknowledgements arrive on their own.
func (a *jsAcker) confirm(time.Duration) {}

// ackStall is how long a JetStream sink with messages in flight may go
// without an acknowledgement before Ready reports it (well within the
// second /readyz promises).
const ackStall = 500 * time.Millisecond

// readyLocked fails once ackStall passed without an acknowledgement while
// messages are in flight.
func (a *jsAcker) readyLocked() error {
	if n := a.s.l.sent; n > 0 {
		if d := time.Since(a.lastAck); d > ackStall {
			return fmt.Errorf("jetstream: %d messages unacknowledged, no acknowledgement for %s", n, d.Round(time.Millisecond))
		}
	}
	return nil
}

// onAck handles a JetStream publish acknowledgement.
func (a *jsAcker) onAck(m *nats.Msg) {
	s := a.s
	id, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, s.inbox), 10, 64)
	if err != nil {
		return
	}
	var ack jsAck
	noResponders := len(m.Data) == 0 && m.Header.Get("Status") == "503"
	if !noResponders && !plainAck(m.Data) {
		var ok bool
		if ack, ok = decodeAck(m.Data); !ok {
			return // not an ack; the deadline will retry
		}
	}
	s.mu.Lock()
	a.lastAck = time.Now()
	e := s.l.lookup(id)
	if e == nil {
		s.mu.Unlock()
		return // a late ack for a message already counted
	}
	switch {
	case noResponders:
		s.stall = fmt.Errorf("no JetStream stream answers for subject %s", e.P.subject)
		e.P.notStored()
		backoffLocked(s.l, e, time.Now())
	case ack.Error != nil && ack.Error.Code == 503:
		s.stall = fmt.Errorf("jetstream: %s", ack.Error.Description)
		e.P.notStored()
		backoffLocked(s.l, e, time.Now())
	case ack.Error != nil && ack.Error.ErrCode == errCodeDupInProcess:
		// An earlier copy of this message (same id) is still being stored,
		// for example a retry that crossed a slow acknowledgement: ask again
		// until the stream answers "stored" or "duplicate".
		e.P.notStored()
		backoffLocked(s.l, e, time.Now())
	case ack.Error != nil:
		subject := e.P.subject
		s.finishLocked(e, FailRejected)
		s.l.advance()
		s.mu.Unlock()
		s.warnEvery("jserr:"+ack.Error.Description, "JetStream rejected a message; counting it as failed",
			zap.String("subject", subject), zap.Int("err_code", ack.Error.ErrCode), zap.String("error", ack.Error.Description))
		return
	case ack.Duplicate && e.P.copies < 2:
		// The stream holds a message with this id, and no other copy of
		// this one could have been stored: it is someone else's — a
		// publisher sharing this sink's host and name, or a record kind
		// whose ids collide. This record is not in the stream.
		subject, msgID := e.P.subject, e.P.msgID()
		s.stall = nil
		s.finishLocked(e, FailDuplicate)
		s.l.advance()
		s.mu.Unlock()
		s.warnEvery("jsdup", "JetStream already held a message with this Nats-Msg-Id that this sink did not publish; counting the record as failed",
			zap.String("subject", subject), zap.String("msg_id", msgID), zap.String("stream", ack.Stream))
		return
	default:
		s.stall = nil
		s.finishLocked(e, "")
		s.l.advance()
	}
	s.mu.Unlock()
}

// errCodeDupInProcess is JetStream's err_code for a 409 "duplicate message
// id is in process" (JSStreamDuplicateMessageConflict).
const errCodeDupInProcess = 10158

// jsAck is a JetStream publish acknowledgement. An ack with "duplicate":
// true counts as sent only when an earlier copy of the message may have
// been stored (natsMsg.copies): Nats-Msg-Ids name the daemon and the sink
// (msgIDPrefix), so the stored message is then this sink's own copy.
// Otherwise the stream holds someone else's message under the id, and the
// record is counted failed (FailDuplicate), never sent.
type jsAck struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// decodeAck decodes an acknowledgement; ok is false for anything else.
func decodeAck(d []byte) (ack jsAck, ok bool) {
	if err := json.Unmarshal(d, &ack); err != nil || (ack.Error == nil && ack.Stream == "") {
		return jsAck{}, false
	}
	return ack, true
}

// ackPrefix starts every successful publish acknowledgement
// ({"stream":"NAME","seq":N} with optional "domain" and "duplicate").
var ackPrefix = []byte(`{"stream":"`)

// plainAck reports whether d is a successful acknowledgement of a newly
// stored message, without the cost of decoding it: a named stream, no
// error, no "duplicate". Anything else is decoded in full.
func plainAck(d []byte) bool {
	return len(d) > len(ackPrefix) && bytes.HasPrefix(d, ackPrefix) && d[len(ackPrefix)] != '"' &&
		!bytes.Contains(d, []byte(`"error"`)) && !bytes.Contains(d, []byte(`"duplicate"`))
}

// backoffLocked holds e back for a retry after 100 ms, doubling per
// attempt up to 2 s.
func backoffLocked(l *ledger[natsMsg], e *entry, now time.Time) {
	d := 100 * time.Millisecond
	for i := 1; i < e.attempts && d < 2*time.Second; i++ {
		d *= 2
	}
	l.retry(e, now.Add(min(d, 2*time.Second)))
}

// ensureStream creates the configured stream, or updates it to the
// configuration. An existing stream that cannot be updated (a changed
// storage type) is used as it is, with a warning.
func (s *NATS) ensureStream() bool {
	a, ok := s.conf.(*jsAcker)
	if !ok || a.js == nil {
		return true // the stream is managed elsewhere
	}
	st := s.cfg.Stream
	storage := jetstream.FileStorage
	if st.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	sc := jetstream.StreamConfig{
		Name:       st.Name,
		Subjects:   st.Subjects,
		Storage:    storage,
		Duplicates: st.DuplicateWindow,
		Replicas:   max(st.Replicas, 1),
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(s.cfg.AckTimeout, 2*time.Second))
	defer cancel()
	_, err := a.js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		if _, ierr := a.js.Stream(ctx, st.Name); ierr == nil {
			s.warnEvery("stream-update", "JetStream stream exists but could not be updated; publishing to it as it is", zap.String("stream", st.Name), zap.Error(err))
			err = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.stall = fmt.Errorf("jetstream stream %s: %w", st.Name, err)
		return false
	}
	if !s.streamOK {
		s.log.Debug("JetStream stream ready", zap.String("stream", st.Name))
	}
	s.streamOK, s.stall = true, nil
	return true
}
