package sinks

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// pump sends held messages once the connection is up, resends what a
// broken connection may have lost and what was not acknowledged in time,
// and confirms core messages the runner left unconfirmed.
func (s *NATS) pump() {
	defer s.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
		}
		s.service()
	}
}

func (s *NATS) service() {
	if !s.nc.IsConnected() {
		return
	}
	s.mu.Lock()
	ok := s.streamOK
	s.mu.Unlock()
	if !ok && !s.ensureStream() {
		return
	}
	now := time.Now()
	s.mu.Lock()
	ep := s.connNum()
	overdue := 0
	for _, e := range s.l.pending() {
		switch {
		case e.state == stUnsent && !now.Before(e.due):
			s.publishLocked(e, now)
		case e.state == stSent && e.conn != ep:
			s.publishLocked(e, now) // the connection it went out on broke
		case e.state == stSent && !e.due.IsZero() && now.After(e.due):
			overdue++
			s.publishLocked(e, now)
		}
	}
	if overdue > 0 && s.stall == nil {
		s.stall = fmt.Errorf("jetstream: %d publishes not acknowledged within %s; retrying", overdue, s.cfg.AckTimeout)
	}
	if s.l.sent > 0 {
		s.conf.publishedLocked() // sent again, or left by a round that stopped early
	}
	s.mu.Unlock()
	if overdue > 0 {
		s.warnEvery("timeout", "JetStream acknowledgements timed out; retrying with the same Nats-Msg-Id", zap.Int("messages", overdue), zap.Duration("ack_timeout", s.cfg.AckTimeout))
	}
}
