package daemon

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/query"
)

// startQuery builds the responder that answers questions about the
// process table (over the tap socket, always, and over NATS with a query:
// section) and runs the NATS service. The query section is read once:
// changing it takes a restart (restartKeys). Its stop, before the
// enricher's, removes the host's inventory entry and stops the service.
func (d *Daemon) startQuery(_ context.Context, cfg *config.Config) (func(), error) {
	compile, err := query.WhereCompiler()
	if err != nil {
		return nil, err
	}
	r := query.NewResponder(query.ResponderConfig{
		Host:         cfg.Host,
		Version:      d.opts.Build.Version,
		Commit:       d.opts.Build.Commit,
		Started:      time.Now(),
		Compile:      compile,
		MaxRows:      cfg.Query.MaxRows,
		MaxPerSecond: cfg.Query.MaxPerSecond,
		Snapshot: func(ctx context.Context) (*proctable.Snapshot, string, error) {
			s, err := d.enricher.Snapshot(ctx)
			return s.Snapshot, s.Incomplete, err
		},
		Loss: d.loss,
	})
	d.responder.Store(r)
	if !cfg.Query.Enabled() {
		return func() { d.responder.Store(nil) }, nil
	}
	svc, err := query.NewService(cfg.Query, r, d.log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			d.log.Error("query service stopped", zap.Error(err))
		}
	}()
	return func() {
		d.responder.Store(nil)
		cancel()
		<-done
	}, nil
}

// loss is the daemon's loss accounting, for the info question.
func (d *Daemon) loss() query.Loss {
	sum := func(name string) uint64 { return uint64(gatheredSum(d.reg, name)) }
	return query.Loss{
		MessagesLost: sum("cnbridged_messages_lost_total"),
		SocketDrops:  sum("cnbridged_socket_drops_total"),
		Resyncs:      sum("cnbridged_proctable_resyncs_total"),
		ExitLost:     sum("cnbridged_proctable_exit_lost_total"),
	}
}

// answerLocal answers a question that came over the tap socket.
func (d *Daemon) answerLocal(ctx context.Context, line []byte, host string) []byte {
	r := d.responder.Load()
	if r == nil {
		return query.Unavailable(host, "the daemon is starting or stopping")
	}
	return query.LocalHandler(r)(ctx, line)
}
