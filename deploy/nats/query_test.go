package natsdeploy

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/query"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// hostService runs web1's or web2's query service with its nkey until the
// test ends.
func hostService(t *testing.T, url, host string) {
	t.Helper()
	tb := proctable.New(proctable.Options{BootID: "b"})
	tb.Seed(&proctable.Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init", Cmdline: []string{"init"}})
	r := query.NewResponder(query.ResponderConfig{Host: host, Version: "1.0.0",
		Snapshot: func(context.Context) (*proctable.Snapshot, string, error) { return tb.Snapshot(), "", nil }})
	cfg := query.Config{NATS: sinks.NATSConnection{URL: url, NkeySeedFile: seedFile(t, host)},
		Inventory: query.Inventory{Bucket: query.DefaultBucket, Interval: 200 * time.Millisecond, TTL: 2 * time.Second}}
	s, err := query.NewService(cfg, r, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// permErrors connects with opts and collects the permission violations
// the server reports to the connection.
func permErrors(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			errs <- err
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused waits for a permission violation naming subject.
func refused(t *testing.T, errs <-chan error, what, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			if strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
			t.Logf("%s: another violation: %v", what, err)
		case <-timeout:
			t.Errorf("%s (%s): the server allowed it", what, subject)
			return
		}
	}
}

// TestQueryRoles: with fleet-auth.conf, each host's key answers questions
// for every host and for itself and keeps its heartbeat; the querier user
// asks, reads the inventory and gets answers. The querier cannot publish
// or read events; a host can neither ask, nor answer another host's
// questions, nor read the queriers' answers, nor write another host's
// heartbeat.
func TestQueryRoles(t *testing.T) {
	s := authServer(t)
	url := s.ClientURL()
	hostService(t, url, "web1")
	hostService(t, url, "web2")

	q, qerrs := permErrors(t, url, nats.UserInfo("querier", "querier-secret"), nats.CustomInboxPrefix(query.InboxPrefix))
	k := &query.Asker{NC: q, Bucket: query.DefaultBucket}
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		hosts, err := k.Inventory(ictx)
		cancel()
		if err == nil && slices.Equal(hosts, []string{"web1", "web2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the querier reads the inventory %v (%v), want web1 web2", hosts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, hosts := range []string{"", "web2"} {
		res, err := k.Ask(ctx, query.Question{Op: query.OpPS, Hosts: hosts, Timeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var answered []string
		for _, a := range res.Answers {
			if a.Error != "" || len(a.Rows) != 1 {
				t.Errorf("--host %q: %s answered %d rows, error %q", hosts, a.Host, len(a.Rows), a.Error)
			}
			answered = append(answered, a.Host)
		}
		slices.Sort(answered)
		if want := res.Known; !slices.Equal(answered, want) || len(res.Silent) > 0 {
			t.Errorf("--host %q: answered %v, silent %v, want %v", hosts, answered, res.Silent, want)
		}
	}
	// Discovery works for the querier too.
	if m, err := q.Request("$SRV.PING."+query.ServiceName, nil, 2*time.Second); err != nil || !strings.Contains(string(m.Data), micro.PingResponseType) {
		t.Errorf("the querier's $SRV.PING: %v", err)
	}

	// The querier neither publishes nor reads events.
	events := reader(t, s, "cn.>")
	q.Publish("cn.web1.proc.exec.-", []byte(`{"forged":true}`))
	refused(t, qerrs, "the querier publishing an event", "cn.web1.proc.exec.-")
	if m, err := events.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("the reader got %s: the querier published an event", m.Data)
	}
	q.SubscribeSync("cn.>")
	refused(t, qerrs, "the querier reading events", "cn.>")
	// Nor does it write to the inventory.
	q.Publish("$KV.cnbridged_hosts.web9", []byte(`{"host":"web9"}`))
	refused(t, qerrs, "the querier writing a heartbeat", "$KV.cnbridged_hosts.web9")

	// web1's key.
	h, herrs := permErrors(t, url, nkeyOption(t, "web1"))
	h.Publish(query.AllSubject(query.OpPS), nil)
	refused(t, herrs, "a host asking a question", query.AllSubject(query.OpPS))
	h.SubscribeSync(query.HostSubject("web2", query.OpPS))
	refused(t, herrs, "a host subscribing to another host's questions", query.HostSubject("web2", query.OpPS))
	h.SubscribeSync(query.InboxPrefix + ".>")
	refused(t, herrs, "a host reading the queriers' answers", query.InboxPrefix+".>")
	js, _ := jetstream.New(h)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.Publish(pctx, "$KV.cnbridged_hosts.web2", []byte(`{"host":"web2"}`)); err == nil {
		t.Error("web1 wrote web2's heartbeat")
	}
}

func nkeyOption(t *testing.T, host string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(seedFile(t, host))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestQueryThroughLeaf: with the shipped hub.conf and leaf.conf (the leaf
// has a JetStream domain of its own), a host's query service on its leaf
// keeps its heartbeat in the hub's domain (query.inventory.js_domain: hub)
// and answers a querier on the hub.
func TestQueryThroughLeaf(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	lo := loadConf(t, "leaf.conf")
	lo.Port = -1
	lo.StoreDir = t.TempDir()
	for _, r := range lo.LeafNode.Remotes {
		r.URLs = nil
		for _, p := range h.leafPt {
			r.URLs = append(r.URLs, &neturl.URL{Scheme: "nats-leaf", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	leaf := startServer(t, lo)
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	hnc, err := nats.Connect(h.url(), nats.CustomInboxPrefix(query.InboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	cntest.WaitForNoError(t, 30*time.Second, "the hub's JetStream", func() error {
		ictx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := hjs.AccountInfo(ictx)
		return err
	})

	tb := proctable.New(proctable.Options{BootID: "b"})
	tb.Seed(&proctable.Observed{PID: 1, StartTicks: 1, Exe: "/sbin/init"})
	r := query.NewResponder(query.ResponderConfig{Host: "web1", Version: "1.0.0",
		Snapshot: func(context.Context) (*proctable.Snapshot, string, error) { return tb.Snapshot(), "", nil }})
	s, err := query.NewService(query.Config{NATS: sinks.NATSConnection{URL: leaf.ClientURL()},
		Inventory: query.Inventory{Bucket: query.DefaultBucket, JSDomain: "hub", Interval: 200 * time.Millisecond, TTL: 2 * time.Second}},
		r, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	k := &query.Asker{NC: hnc, Bucket: query.DefaultBucket}
	cntest.WaitForNoError(t, 30*time.Second, "web1 in the hub's inventory", func() error {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		hosts, err := k.Inventory(ictx)
		if err == nil && !slices.Equal(hosts, []string{"web1"}) {
			err = fmt.Errorf("inventory %v", hosts)
		}
		return err
	})
	res, err := k.Ask(ctx, query.Question{Op: query.OpPS, Timeout: 5 * time.Second}, nil)
	if err != nil || len(res.Answers) != 1 || len(res.Answers[0].Rows) != 1 || len(res.Silent) != 0 {
		t.Fatalf("asked on the hub: %+v (%v), want web1's one row", res, err)
	}
}
