package sinks

import "time"

// coreConfirmer confirms core NATS messages with PING round trips: when
// the PONG comes back on the connection the messages went out on, the
// server has processed everything published before the PING. It runs
// beside publishing, in its own goroutine, so that Write only hands
// messages to the client unless MaxInFlight messages are unconfirmed.
type coreConfirmer struct {
	s       *NATS
	running bool          // a round is under way or about to start (under s.mu)
	wake    chan struct{} // start a round
}

func newCoreConfirmer(s *NATS) *coreConfirmer {
	return &coreConfirmer{s: s, wake: make(chan struct{}, 1)}
}

func (c *coreConfirmer) start() {
	c.s.wg.Add(1)
	go c.run()
}

// holdsWhileDown: core NATS has no acknowledgements to wait for while
// disconnected: the sink holds what the outage buffer takes.
func (c *coreConfirmer) holdsWhileDown() bool { return true }

func (c *coreConfirmer) ackDeadline(time.Time) time.Time { return time.Time{} }

// publishedLocked starts a round unless one is running.
func (c *coreConfirmer) publishedLocked() {
	if c.running {
		return
	}
	c.running = true
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *coreConfirmer) readyLocked() error { return nil }

// confirm sends a PING and, when its PONG comes back on the connection the
// messages went out on, counts every core message published before it as
// sent. Messages published on an earlier connection are left for the pump
// to send again.
func (c *coreConfirmer) confirm(timeout time.Duration) { c.round(timeout) }

// round is one confirmation round trip. It reports whether it succeeded
// and the publish number its PING covered.
func (c *coreConfirmer) round(timeout time.Duration) (ok bool, upto uint64) {
	s := c.s
	s.mu.Lock()
	if s.l.sent == 0 || !s.nc.IsConnected() {
		s.mu.Unlock()
		return false, 0
	}
	upto = s.l.pubSeq
	conn := s.connNum()
	s.mu.Unlock()
	if err := s.nc.FlushTimeout(timeout); err != nil {
		return false, 0
	}
	if s.connNum() != conn {
		// The PING may have gone out on a later connection than the
		// messages: it proves nothing about them.
		return false, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countLocked(s.l.confirm(conn, upto), "")
	return true, upto
}

// confirmPace is the least time between the confirmer's round trips while
// fewer than half of MaxInFlight messages are unconfirmed: under load, one
// PING per confirmPace rather than one per message.
const confirmPace = time.Millisecond

// run confirms with back-to-back round trips while messages are being
// published. It sleeps while nothing is unconfirmed; Write and the pump
// wake it.
func (c *coreConfirmer) run() {
	s := c.s
	defer s.wg.Done()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-c.wake:
		}
		for {
			ok, upto := c.round(s.cfg.AckTimeout)
			s.mu.Lock()
			// Decided under the lock Write publishes under: a message
			// published after this point finds running false and wakes
			// the confirmer again.
			if !ok || s.l.sent == 0 || s.l.pubSeq <= upto {
				c.running = false
				s.mu.Unlock()
				break
			}
			hurry := s.l.sent >= s.cfg.MaxInFlight/2
			s.mu.Unlock()
			if hurry {
				continue
			}
			pace.Reset(confirmPace)
			select {
			case <-s.done:
				pace.Stop()
				return
			case <-pace.C:
			}
		}
	}
}
