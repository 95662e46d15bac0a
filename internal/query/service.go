package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/ratelog"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// Service is the query service on NATS: a micro service named cnbridged
// with the endpoints of Ops on the fan-out and the host's own subjects,
// and the host's heartbeat entry in the inventory bucket.
type Service struct {
	cfg  Config
	r    *Responder
	log  *zap.Logger
	opts []nats.Option
	warn *ratelog.Limiter
}

// NewService checks the connection's credentials and TLS files (as a NATS
// sink does) and returns the service; Run connects and serves.
func NewService(cfg Config, r *Responder, log *zap.Logger, extra ...nats.Option) (*Service, error) {
	auth, err := cfg.NATS.Options()
	if err != nil {
		return nil, fmt.Errorf("query.nats: %w", err)
	}
	s := &Service{cfg: cfg, r: r, log: log.Named("query"), warn: ratelog.New(time.Minute, 16)}
	s.opts = append([]nats.Option{
		nats.Name("cnbridged query " + r.Host()),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ConnectHandler(func(nc *nats.Conn) {
			s.log.Info("query service connected to NATS", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("query service reconnected to NATS", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("query service disconnected from NATS", zap.Error(err))
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if s.warn.Allow(err.Error(), time.Now()) {
				s.log.Warn("query service: NATS error", zap.Error(err))
			}
		}),
	}, auth...)
	s.opts = append(s.opts, extra...)
	return s, nil
}

// Run connects (retrying while the servers are down: the daemon runs
// meanwhile), serves questions and keeps the heartbeat until ctx ends;
// then it removes the heartbeat entry and stops the service.
func (s *Service) Run(ctx context.Context) error {
	nc, err := nats.Connect(s.cfg.NATS.URL, s.opts...)
	if err != nil {
		return fmt.Errorf("query.nats.url %s: %w", sinks.RedactURLs(s.cfg.NATS.URL), err)
	}
	defer nc.Close()
	svc, err := s.addService(ctx, nc)
	if err != nil {
		return err
	}
	s.log.Info("query service registered", zap.String("name", ServiceName), zap.String("id", svc.Info().ID),
		zap.String("subjects", AllSubject("*")+", "+HostSubject(s.r.Host(), "*")))
	var hb *heartbeat
	if s.cfg.Inventory.Bucket != "" {
		hb = &heartbeat{s: s, nc: nc, id: svc.Info().ID, done: make(chan struct{})}
		go hb.run(ctx)
	}
	<-ctx.Done()
	if hb != nil {
		<-hb.done
	}
	if err := svc.Stop(); err != nil {
		s.log.Warn("stopping the query service", zap.Error(err))
	}
	return nil
}

// semverish turns the daemon's version into a SemVer, which micro
// requires: "v1.2.3" is 1.2.3, anything else (a git describe, "devel")
// 0.0.0 with the version as build metadata.
func semverish(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semver.MatchString(v) {
		return v
	}
	meta := strings.Trim(badMeta.ReplaceAllString(v, "-"), "-")
	if meta == "" {
		meta = "unknown"
	}
	return "0.0.0+" + meta
}

var (
	semver  = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-.]+)?(\+[0-9A-Za-z-.]+)?$`)
	badMeta = regexp.MustCompile(`[^0-9A-Za-z-]+`)
)

func (s *Service) addService(ctx context.Context, nc *nats.Conn) (micro.Service, error) {
	host := s.r.Host()
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     semverish(s.r.cfg.Version),
		Description: "process table of cnbridged on " + host,
		Metadata:    map[string]string{"host": host, "version": s.r.cfg.Version},
		// Every host answers a fan-out question: no queue group.
		QueueGroupDisabled: true,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Warn("query service", zap.String("subject", e.Subject), zap.String("error", e.Description))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("query service: %w", err)
	}
	for _, op := range Ops {
		h := s.handler(ctx, nc, op)
		if err := svc.AddEndpoint(op, h, micro.WithEndpointSubject(AllSubject(op))); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("query service: endpoint %s: %w", op, err)
		}
		if err := svc.AddEndpoint(op+"-host", h, micro.WithEndpointSubject(HostSubject(host, op))); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("query service: endpoint %s-host: %w", op, err)
		}
	}
	return svc, nil
}

// handler answers op. An answer is one message: at most the server's max
// payload, less room for headers.
func (s *Service) handler(ctx context.Context, nc *nats.Conn, op string) micro.HandlerFunc {
	return func(req micro.Request) {
		maxBytes := int(nc.MaxPayload()) - 4096
		a := s.r.Answer(ctx, op, req.Data(), maxBytes)
		if a == nil {
			return // a question for other hosts
		}
		body, err := json.Marshal(a)
		if err != nil {
			body, _ = json.Marshal(fail(&Answer{Host: a.Host, Version: a.Version}, CodeUnavailable, err))
		}
		if a.Code != 0 {
			err = req.Error(codeText(a.Code), oneLine(a.Error), body)
		} else {
			err = req.Respond(body)
		}
		if err != nil {
			s.log.Warn("answering a question", zap.String("question", op), zap.Error(err))
		}
	}
}

// oneLine makes s fit in a header.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", " ").Replace(s)
}

// Heartbeat is a host's entry in the inventory bucket.
type Heartbeat struct {
	Host      string `json:"host"`
	Version   string `json:"version"`
	ServiceID string `json:"service_id"`
	// Time is when the entry was written (RFC 3339).
	Time string `json:"time"`
}

// KVKey is host's key in the inventory bucket: the host with every
// character a key may not hold replaced by _.
func KVKey(host string) string {
	k := badKey.ReplaceAllString(host, "_")
	if k == "" {
		return "_"
	}
	return k
}

var badKey = regexp.MustCompile(`[^-_=A-Za-z0-9]`)

// heartbeat writes the host's inventory entry every interval and deletes
// it at a clean stop.
type heartbeat struct {
	s    *Service
	nc   *nats.Conn
	id   string
	done chan struct{}
	// logged is the last problem logged, so each is logged once.
	logged string
}

func (h *heartbeat) warnOnce(msg string, err error) {
	if key := msg + err.Error(); key != h.logged {
		h.logged = key
		h.s.log.Warn(msg, zap.String("bucket", h.s.cfg.Inventory.Bucket), zap.Error(err))
	}
}

func (h *heartbeat) run(ctx context.Context) {
	defer close(h.done)
	inv := h.s.cfg.Inventory
	var js jetstream.JetStream
	var err error
	if inv.JSDomain != "" {
		js, err = jetstream.NewWithDomain(h.nc, inv.JSDomain)
	} else {
		js, err = jetstream.New(h.nc)
	}
	if err != nil {
		h.warnOnce("no inventory heartbeat", err)
		return
	}
	key := KVKey(h.s.r.Host())
	var kv jetstream.KeyValue
	t := time.NewTicker(inv.Interval)
	defer t.Stop()
	for {
		if kv == nil {
			kv, err = h.bucket(ctx, js)
		}
		if kv != nil {
			err = h.put(ctx, kv, key)
			if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrNoResponders) {
				kv = nil // the bucket went away (a server without its store): made again
			}
		}
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
				errors.Is(err, nats.ErrNoResponders) {
				h.warnOnce("no JetStream on the server: this host is not in the fleet's inventory (queriers name it with --expect)", err)
			} else {
				h.warnOnce("writing the inventory heartbeat", err)
			}
		} else if err == nil && h.logged != "" {
			h.logged = ""
			h.s.log.Info("inventory heartbeat written", zap.String("bucket", inv.Bucket), zap.String("key", key))
		}
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := kv.Delete(dctx, key); err != nil {
					h.s.log.Warn("removing the inventory heartbeat at stop (it expires by itself)", zap.Duration("ttl", inv.TTL), zap.Error(err))
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// bucket binds to the inventory bucket, creating it when it is missing.
func (h *heartbeat) bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	inv := h.s.cfg.Inventory
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(actx, inv.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(actx, jetstream.KeyValueConfig{
			Bucket:      inv.Bucket,
			Description: "cnbridged hosts that answer fleet queries (heartbeats)",
			History:     1,
			TTL:         inv.TTL,
			Storage:     jetstream.MemoryStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(actx, inv.Bucket) // another host made it meanwhile
		}
	}
	return kv, err
}

func (h *heartbeat) put(ctx context.Context, kv jetstream.KeyValue, key string) error {
	b, _ := json.Marshal(Heartbeat{Host: h.s.r.Host(), Version: h.s.r.cfg.Version, ServiceID: h.id,
		Time: time.Now().UTC().Format(time.RFC3339)})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := kv.Put(pctx, key, b)
	return err
}
