package natsdeploy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// outageFigures are TestHubOutage's: how many messages, at what rate, and
// how long the hub is down, from outageAfter into publishing.
type outageFigures struct {
	messages, rate int
	after, down    time.Duration
}

// hubOutageFigures: by default 30 000 messages at 3 000/s with the hub
// down for 5 s from 2 s in (a third of them buffered by the leaf through
// the outage; the test takes about 15 s). The figures docs/nats.md
// reports (issue 14: 100 000 at 2 000/s, down for 30 s from 5 s in) are
// CNBRIDGED_TEST_HUB_OUTAGE=100000,2000,5s,30s.
func hubOutageFigures(t *testing.T) outageFigures {
	f := outageFigures{messages: 30_000, rate: 3_000, after: 2 * time.Second, down: 5 * time.Second}
	env := os.Getenv("CNBRIDGED_TEST_HUB_OUTAGE")
	if env == "" {
		return f
	}
	p := strings.Split(env, ",")
	var err error
	if len(p) != 4 {
		err = errors.New("want 4 values")
	}
	for i, dst := range []*int{&f.messages, &f.rate} {
		if err == nil {
			*dst, err = strconv.Atoi(p[i])
		}
	}
	for i, dst := range []*time.Duration{&f.after, &f.down} {
		if err == nil {
			*dst, err = time.ParseDuration(p[2+i])
		}
	}
	if err != nil || f.messages <= 0 || f.rate <= 0 {
		t.Fatalf("CNBRIDGED_TEST_HUB_OUTAGE=%q: want MESSAGES,RATE,AFTER,DOWN (e.g. 100000,2000,5s,30s): %v", env, err)
	}
	return f
}

// loadConf reads one of the shipped server configs and points it at
// loopback: everything else (JetStream domain, cluster name, leaf remotes'
// shape) comes from the file.
func loadConf(t *testing.T, file string) *server.Options {
	t.Helper()
	o, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	o.Host = "127.0.0.1"
	o.NoLog, o.NoSigs = os.Getenv("NATS_TEST_LOG") == "", true
	return o
}

func startServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	s, err := natstest.Start(o)
	if err != nil {
		t.Fatalf("%s: %v", o.ServerName, err)
	}
	return s
}

// hub is the three hub servers of hub.conf on loopback.
type hub struct {
	t                       *testing.T
	dirs                    []string
	client, cluster, leafPt []int
	servers                 []*server.Server
}

func newHub(t *testing.T) *hub {
	ports := natstest.FreePorts(t, 9)
	h := &hub{t: t, client: ports[0:3], cluster: ports[3:6], leafPt: ports[6:9]}
	for range 3 {
		h.dirs = append(h.dirs, t.TempDir())
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *hub) start() {
	h.t.Helper()
	h.servers = make([]*server.Server, 3)
	type started struct {
		i   int
		s   *server.Server
		err error
	}
	done := make(chan started, 3)
	for i := range 3 {
		o := loadConf(h.t, "hub.conf")
		o.ServerName = fmt.Sprintf("hub-%d", i+1)
		o.Port = h.client[i]
		o.StoreDir = h.dirs[i]
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", h.cluster[i]
		o.Routes = nil
		for j := range 3 {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", h.cluster[j])})
		}
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", h.leafPt[i]
		// The three start together: each waits for its routes.
		go func() {
			s, err := natstest.Start(o)
			done <- started{i, s, err}
		}()
	}
	var errs []error
	for range 3 {
		st := <-done
		h.servers[st.i] = st.s
		if st.err != nil {
			errs = append(errs, fmt.Errorf("hub-%d: %w", st.i+1, st.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hub) stop() {
	for _, s := range h.servers {
		if s != nil {
			s.Shutdown()
		}
	}
	for _, s := range h.servers {
		if s != nil {
			s.WaitForShutdown()
		}
	}
	h.servers = nil
}

func (h *hub) url() string {
	u := ""
	for i, p := range h.client {
		if i > 0 {
			u += ","
		}
		u += fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	return u
}

func readStreamConfig(t *testing.T, file string) jetstream.StreamConfig {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c jetstream.StreamConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// atLeast is nil when the stream holds want messages, else why not.
func atLeast(n uint64, err error, want uint64) error {
	if err == nil && n < want {
		err = fmt.Errorf("%d of %d messages", n, want)
	}
	return err
}

// TestHubOutage: a host publishes into its leaf node's stream (its own
// JetStream domain, on local disk) while the hub of three is down (for 5 s
// by default, see hubOutageFigures); afterwards the hub's stream, which
// sources the leaf's, holds every message exactly once, in order.
func TestHubOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 15 s")
	}
	fig := hubOutageFigures(t)
	outageMessages, outageRate, outageAfter, outageDown := uint64(fig.messages), fig.rate, fig.after, fig.down
	t.Logf("%d messages at %d/s, the hub down for %v from %v in", outageMessages, outageRate, outageDown, outageAfter)
	h := newHub(t)

	lo := loadConf(t, "leaf.conf")
	lo.Port = -1
	lo.StoreDir = t.TempDir()
	for _, r := range lo.LeafNode.Remotes {
		r.URLs = nil
		for _, p := range h.leafPt {
			r.URLs = append(r.URLs, &url.URL{Scheme: "nats-leaf", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	leaf := startServer(t, lo)
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	domain := lo.JetStreamDomain

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The leaf's stream, created on the host's own server.
	lnc, err := nats.Connect(leaf.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	ljs, _ := jetstream.New(lnc)
	if _, err := ljs.CreateStream(ctx, readStreamConfig(t, "leaf-stream.json")); err != nil {
		t.Fatalf("leaf stream: %v", err)
	}
	// The hub's stream, sourcing the leaf's domain.
	hnc, err := nats.Connect(h.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	hubCfg := readStreamConfig(t, "hub-stream.json")
	if hubCfg.Sources[0].External == nil || hubCfg.Sources[0].External.APIPrefix != "$JS."+domain+".API" {
		t.Fatalf("hub-stream.json sources %+v, want the leaf's domain %s", hubCfg.Sources[0], domain)
	}
	cntest.WaitForNoError(t, 30*time.Second, "the hub stream", func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := hjs.CreateStream(cctx, hubCfg)
		return err
	})
	cntest.WaitFor(t, 30*time.Second, "the leaf connected", func() bool { return leaf.NumLeafNodes() > 0 })

	// Publish at the rate into the leaf, with JetStream acks; stop the hub
	// outageAfter in and start it again outageDown later.
	var published atomic.Int64
	pubErr := make(chan error, 1)
	start := time.Now()
	go func() {
		buf := make([]byte, 64)
		var pending []jetstream.PubAckFuture
		for i := range outageMessages {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(outageRate))); d > 0 {
				time.Sleep(d)
			}
			binary.BigEndian.PutUint64(buf, uint64(i))
			f, err := ljs.PublishAsync("cn.web1.proc.exec", buf)
			if err != nil {
				pubErr <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			pending = append(pending, f)
			if len(pending) >= 1000 {
				for _, f := range pending {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						pubErr <- fmt.Errorf("ack: %w", err)
						return
					}
				}
				pending = pending[:0]
			}
			published.Add(1)
		}
		for _, f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				pubErr <- fmt.Errorf("ack: %w", err)
				return
			}
		}
		pubErr <- nil
	}()
	time.Sleep(time.Until(start.Add(outageAfter)))
	h.stop()
	down := time.Now()
	atDown := published.Load()
	time.Sleep(outageDown)
	h.start()
	restarted, backlog := time.Now(), published.Load()
	t.Logf("hub down %v; %d messages published before, %d during the outage", restarted.Sub(down).Round(time.Second), atDown, backlog-atDown)
	cntest.WaitForNoError(t, 60*time.Second, "the hub stream to take the backlog", func() error {
		n, err := hubMsgs(ctx, hjs, hubCfg.Name)
		return atLeast(n, err, uint64(backlog))
	})
	catchUp := time.Since(restarted)
	t.Logf("backlog: the hub stream held the %d messages published until its restart %v after it (%.1f× the publish rate of %d/s)",
		backlog, catchUp.Round(100*time.Millisecond), float64(backlog-atDown)/catchUp.Seconds()/float64(outageRate), outageRate)
	if err := <-pubErr; err != nil {
		t.Fatalf("publishing to the leaf: %v", err)
	}
	t.Logf("published %d messages in %v", outageMessages, time.Since(start).Round(time.Millisecond))

	cntest.WaitForNoError(t, 90*time.Second, "the hub stream to hold every message", func() error {
		n, err := hubMsgs(ctx, hjs, hubCfg.Name)
		return atLeast(n, err, outageMessages)
	})
	if n, _ := hubMsgs(ctx, hjs, hubCfg.Name); n != outageMessages {
		t.Fatalf("hub stream holds %d messages, want %d", n, outageMessages)
	}
	// Every message exactly once, in order.
	s, _ := hjs.Stream(ctx, hubCfg.Name)
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// The ordered consumer may pause or be recreated while the restarted
	// hub settles (seen on a loaded machine: an empty fetch after 20 000
	// of 30 000): an empty or failed fetch is retried until 30 s pass
	// without a message.
	progress := time.Now()
	for next := uint64(0); next < outageMessages; {
		batch, err := cons.Fetch(5000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if time.Since(progress) > 30*time.Second {
				t.Fatalf("no hub message after %d for 30 s: %v", next, err)
			}
			t.Logf("fetch after %d messages: %v (retrying)", next, err)
			continue
		}
		for m := range batch.Messages() {
			if v := binary.BigEndian.Uint64(m.Data()); v != next {
				t.Fatalf("hub message %d holds %d, want %d", next+1, v, next)
			}
			next++
			progress = time.Now()
		}
		if err := batch.Error(); err != nil {
			t.Logf("fetch after %d messages: %v (retrying)", next, err)
		}
		if time.Since(progress) > 30*time.Second {
			t.Fatalf("no hub message after %d for 30 s", next)
		}
	}
	if n, _ := hubMsgs(ctx, hjs, hubCfg.Name); n != outageMessages {
		t.Fatalf("hub stream holds %d messages after reading, want %d", n, outageMessages)
	}
}

// hubMsgs is how many messages the stream holds.
func hubMsgs(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
