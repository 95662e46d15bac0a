package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"

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
		if len(rc.Users) > 0 {
			d.log.Info("connector requests are meant for these NATS users; enforce it with NATS permissions",
				zap.String("subject", rc.NATSSubject), zap.Strings("users", rc.Users))
		}
	}
	d.mu.Unlock()
	em, err := listener.NewEmitter()
	if err != nil {
		return nil, fmt.Errorf("requests: %w", err)
	}
	srv, err := requests.New(cfg.Requests, nc.Conn(), em, d.enc, d.reg, d.log)
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
		if err := srv.ReadReplies(rctx, em); err != nil {
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
