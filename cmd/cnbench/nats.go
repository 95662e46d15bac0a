package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cnbridged/cnbridged/internal/natstest"
)

// natsRig is an embedded nats-server (in the harness process, on the same
// two cores) with JetStream on a file store.
type natsRig struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(dir string) (*natsRig, error) {
	srv, err := natstest.Start(natstest.Options(natstest.JetStream(filepath.Join(dir, "jetstream")),
		func(o *server.Options) { o.MaxPayload = 1 << 20 }))
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	return &natsRig{srv: srv, nc: nc, js: js}, nil
}

func (r *natsRig) close() {
	r.nc.Close()
	r.srv.Shutdown()
	r.srv.WaitForShutdown()
}

// subscribe counts core NATS messages on subject and measures latency from
// the payload's send time to delivery to this subscriber.
func (r *natsRig) subscribe(subject string) (*lineStats, func(), error) {
	st := &lineStats{}
	sub, err := r.nc.Subscribe(subject, func(m *nats.Msg) {
		st.line(m.Data, time.Now().UnixNano())
	})
	if err != nil {
		return nil, nil, err
	}
	sub.SetPendingLimits(-1, -1)
	r.nc.Flush()
	return st, func() { sub.Unsubscribe() }, nil
}

// createStream creates a file-store stream configured as the daemon's
// JetStream sink configures its own (duplicate window 2 min, one replica).
func (r *natsRig) createStream(name, subject string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: 1,
	})
	return err
}

// streamMsgs returns how many messages stream holds.
func (r *natsRig) streamMsgs(name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return int64(info.State.Msgs)
}

// rawJetStream measures a plain nats.go async publisher (max 4096 pending)
// into a file-store stream from inside the harness process, beside the
// server, with no ids: the figure earlier versions compared the sink with
// (information only; jspub is the like-with-like baseline).
func (r *natsRig) rawJetStream(n int, line []byte) (rate float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "CNBENCHRAW", Subjects: []string{"cnbenchraw.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return 0, err
	}
	var failed atomic.Int64
	start := time.Now()
	for i := 0; i < n; i++ {
		for {
			_, err := r.js.PublishAsync("cnbenchraw.x", line)
			if err == nil {
				break
			}
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				continue
			}
			return 0, err
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	el := time.Since(start)
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d publishes failed", f)
	}
	return float64(n) / el.Seconds(), r.js.DeleteStream(ctx, "CNBENCHRAW")
}

// rawCore measures plain core NATS publishing of n lines with a subscriber
// counting them, for reference.
func (r *natsRig) rawCore(n int, line []byte) (float64, error) {
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := r.nc.Subscribe("cnbenchcore.x", func(*nats.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	pc, err := nats.Connect(r.srv.ClientURL())
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := pc.Publish("cnbenchcore.x", line); err != nil {
			return 0, err
		}
	}
	pc.Flush()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("core: %d of %d delivered", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
