package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
	"github.com/cnbridged/cnbridged/internal/requests"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// listenGroups is listener.groups plus the groups connector requests
// expect their replies on.
func listenGroups(cfg *config.Config) []int {
	groups := slices.Clone(cfg.Listener.Groups)
	for _, r := range cfg.Requests {
		if !slices.Contains(groups, r.Group) {
			groups = append(groups, r.Group)
		}
	}
	return groups
}

// startRequests serves cfg.requests over the connection of the NATS sink
// each names, sending from a socket of its own. It returns a function that
// stops it and waits.
func (d *Daemon) startRequests(ctx context.Context, cfg *config.Config) (stop func(), err error) {
	if len(cfg.Requests) == 0 {
		return func() {}, nil
	}
	var entries []requests.Entry
	conn := ""
	d.mu.Lock()
	var nc *sinks.NATS
	for i, rc := range cfg.Requests {
		s, ok := d.sinks[rc.Sink]
		n, isNATS := s.runner.Sink().(*sinks.NATS)
		if !ok || !isNATS {
			d.mu.Unlock()
			return nil, fmt.Errorf("requests[%d].sink: %q is not a running nats sink", i, rc.Sink)
		}
		if nc != nil && n != nc {
			d.mu.Unlock()
			return nil, fmt.Errorf("requests[%d].sink: every request must use the same nats sink (%s)", i, conn)
		}
		nc, conn = n, rc.Sink
		id := rc.CnID
		entries = append(entries, requests.Entry{
			Subject: rc.NATSSubject,
			ID:      id,
			Group:   rc.Group,
			Timeout: rc.Timeout,
			Format:  rc.Format,
			Rate:    rc.RateLimit,
			Burst:   rc.Burst,
			AckOnly: id.IsProc(),
		})
		if len(rc.Users) > 0 {
			d.log.Info("connector requests are meant for these NATS users; enforce it with NATS permissions",
				zap.String("subject", entries[len(entries)-1].Subject), zap.Strings("users", rc.Users))
		}
	}
	d.mu.Unlock()
	em, err := listener.NewEmitter()
	if err != nil {
		return nil, fmt.Errorf("requests: %w", err)
	}
	srv, err := requests.New(entries, nc.Conn(), em, d.enc, d.reg, d.log)
	if err != nil {
		em.Close()
		return nil, err
	}
	d.replies = srv
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{}, 2)
	go func() {
		if err := srv.Run(rctx); err != nil {
			d.log.Error("connector requests stopped", zap.Error(err))
		}
		done <- struct{}{}
	}()
	go func() {
		// Replies sent to the request socket's own port id.
		err := em.ReadUnicast(rctx, func(dg []byte, sender uint32) {
			if sender != 0 {
				return
			}
			if m, err := cnmsg.Decode(dg); err == nil {
				srv.Offer(m, time.Now())
			}
		})
		if err != nil {
			d.log.Warn("reading unicast replies stopped", zap.Error(err))
		}
		done <- struct{}{}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
		<-done
		em.Close()
	}), nil
}
