package tap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxLine bounds one event line read from a source.
const MaxLine = 1 << 20

// ReadSocket connects to a daemon's tap socket and calls fn with each line
// (without its newline; the slice is valid only during the call) until ctx
// ends, the daemon hangs up, or fn returns an error.
func ReadSocket(ctx context.Context, path string, fn func([]byte) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("tap socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("tap socket: %w", err)
	}
	return errors.New("tap socket: the daemon closed the connection")
}

// NATSSource reads event lines from NATS: a core subscription to Subject,
// or, with Stream set, an ephemeral ordered JetStream consumer on it.
type NATSSource struct {
	URL     string
	Subject string // core subject, or the stream's filter subject
	Stream  string
	Domain  string // JetStream domain (a leaf node's local domain)
	// Since starts the stream consumer that long ago; SinceSeq at that
	// sequence. Neither: only new messages.
	Since    time.Duration
	SinceSeq uint64
	Opts     []nats.Option
}

// Read calls fn with each message's payload until ctx ends or fn returns
// an error. Messages are handed over one at a time, in order.
func (s *NATSSource) Read(ctx context.Context, fn func([]byte) error) error {
	opts := append([]nats.Option{nats.Name("cnbridged tap"), nats.MaxReconnects(-1)}, s.Opts...)
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		return fmt.Errorf("--nats %s: %w", s.URL, err)
	}
	defer nc.Close()
	msgs := make(chan []byte, 1024)
	errc := make(chan error, 1)
	deliver := func(b []byte) {
		select {
		case msgs <- b:
		case <-ctx.Done():
		}
	}
	if s.Stream == "" {
		if s.Subject == "" {
			return errors.New("--subject or --stream is required with --nats")
		}
		sub, err := nc.Subscribe(s.Subject, func(m *nats.Msg) { deliver(m.Data) })
		if err != nil {
			return fmt.Errorf("--subject %s: %w", s.Subject, err)
		}
		defer sub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("--subject %s: %w", s.Subject, err)
		}
	} else {
		var js jetstream.JetStream
		if s.Domain != "" {
			js, err = jetstream.NewWithDomain(nc, s.Domain)
		} else {
			js, err = jetstream.New(nc)
		}
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
		if s.Subject != "" {
			cfg.FilterSubjects = []string{s.Subject}
		}
		switch {
		case s.SinceSeq > 0:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.SinceSeq
		case s.Since > 0:
			t := time.Now().Add(-s.Since)
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		}
		cons, err := js.OrderedConsumer(ctx, s.Stream, cfg)
		if err != nil {
			return fmt.Errorf("--stream %s: %w", s.Stream, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { deliver(m.Data()) },
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrStreamNotFound) {
					select {
					case errc <- err:
					default:
					}
				}
			}))
		if err != nil {
			return fmt.Errorf("--stream %s: %w", s.Stream, err)
		}
		defer cc.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return fmt.Errorf("--stream %s: %w", s.Stream, err)
		case b := <-msgs:
			if err := fn(b); err != nil {
				return err
			}
		}
	}
}
