package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/natstest"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startService runs a query service for host on url until the test ends
// (or stop is called); it returns stop.
func startService(t *testing.T, url, host string, snap SnapshotFunc, inv Inventory) (stop func()) {
	t.Helper()
	r := NewResponder(ResponderConfig{Host: host, Version: "1.2.3", Snapshot: snap, Compile: testCompile, MaxRows: 100, MaxPerSecond: 100})
	s, err := NewService(Config{NATS: sinks.NATSConnection{URL: url}, Inventory: inv}, r, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", host, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitServices waits until n query services answer $SRV.PING: their
// subscriptions are in place.
func waitServices(t testing.TB, nc *nats.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		inbox := nc.NewInbox()
		sub, _ := nc.SubscribeSync(inbox)
		nc.PublishRequest("$SRV.PING."+ServiceName, inbox, nil)
		got := 0
		for {
			if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
				break
			}
			got++
		}
		sub.Unsubscribe()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d query services answer $SRV.PING", got, n)
		}
	}
}

// tableSnap serves one snapshot of tb, taken now: a Table is not safe for
// concurrent use (Snapshot links parents as it reads them), and the
// daemon takes snapshots on the enricher's goroutine only.
func tableSnap(tb *proctable.Table) SnapshotFunc {
	s := tb.Snapshot()
	return func(context.Context) (*proctable.Snapshot, string, error) { return s, "", nil }
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(InboxPrefix), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var testInventory = Inventory{Bucket: "cnbridged_hosts_test", Interval: 100 * time.Millisecond, TTL: 2 * time.Second}

// waitInventory polls the inventory until it lists want.
func waitInventory(t *testing.T, k *Asker, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, err := k.Inventory(ctx)
		cancel()
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory %v (%v), want %v", got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func answerHosts(res *Result) []string {
	var hosts []string
	for _, a := range res.Answers {
		hosts = append(hosts, a.Host)
	}
	slices.Sort(hosts)
	return hosts
}

// TestServiceFleet: three hosts behind one server answer a fan-out, a
// targeted question and a glob; the inventory lists them while they run
// and not after a clean stop; a host that cannot answer in time is
// reported silent; $SRV discovery lists the service on every host.
func TestServiceFleet(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, natstest.JetStream(t.TempDir()))
	url := srv.ClientURL()
	tb := testTable(t)
	startService(t, url, "h1", tableSnap(tb), testInventory)
	stop2 := startService(t, url, "h2", tableSnap(tb), testInventory)
	// h3 hangs: its table never comes.
	hung := make(chan struct{})
	defer close(hung)
	startService(t, url, "h3", func(ctx context.Context) (*proctable.Snapshot, string, error) {
		select {
		case <-hung:
			// The test ended: a question still waiting gets an error
			// (ctx.Err() is nil then, and a nil table with no error is
			// no answer a real snapshot gives).
			return nil, "", errors.New("the test ended")
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}, testInventory)

	k := &Asker{NC: connect(t, url), Bucket: testInventory.Bucket}
	waitInventory(t, k, "h1", "h2", "h3")
	ctx := context.Background()

	res, err := k.Ask(ctx, Question{Op: OpPS, Req: Request{Where: "exe=nc"}, Timeout: 3 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// h3's table does not come in time: it says so before the asker
	// gives up.
	if diff := cmp.Diff([]string{"h1", "h2", "h3"}, answerHosts(res)); diff != "" {
		t.Errorf("fan-out answered (-want +got):\n%s", diff)
	}
	if len(res.Silent) != 0 || res.Inventory != "kv" || res.Targeted {
		t.Errorf("silent %v inventory %q targeted %v; want none kv false", res.Silent, res.Inventory, res.Targeted)
	}
	for _, a := range res.Answers {
		if a.Host == "h3" {
			if a.Code != CodeUnavailable || !strings.Contains(a.Error, "process table") {
				t.Errorf("h3 answered %d %q, want 503 about its process table", a.Code, a.Error)
			}
			continue
		}
		if len(a.Rows) != 1 || !strings.Contains(string(a.Rows[0]), `"host":"`+a.Host+`"`) {
			t.Errorf("%s answered %d rows: %s", a.Host, len(a.Rows), a.Rows)
		}
	}

	// One host by name: only it is asked, and the others never see it.
	res, err = k.Ask(ctx, Question{Op: OpInfo, Hosts: "h2", Timeout: 10 * time.Second}, nil)
	if err != nil || !slices.Equal(answerHosts(res), []string{"h2"}) || !res.Targeted || len(res.Silent) != 0 {
		t.Errorf("--host h2: answered %v silent %v targeted %v (%v)", answerHosts(res), res.Silent, res.Targeted, err)
	}
	// A glob over the inventory: the hosts it matches, each on its own
	// subject.
	res, err = k.Ask(ctx, Question{Op: OpInfo, Hosts: "h[12]", Timeout: 10 * time.Second}, nil)
	if err != nil || !slices.Equal(answerHosts(res), []string{"h1", "h2"}) || !res.Targeted || !slices.Equal(res.Known, []string{"h1", "h2"}) {
		t.Errorf("--host h[12]: answered %v known %v targeted %v (%v)", answerHosts(res), res.Known, res.Targeted, err)
	}
	// Without an inventory the glob goes to every host: those it does not
	// match stay silent, and nobody can tell who should have answered.
	bare := &Asker{NC: k.NC}
	res, err = bare.Ask(ctx, Question{Op: OpInfo, Hosts: "h[12]", Timeout: 2 * time.Second}, nil)
	if err != nil || !slices.Equal(answerHosts(res), []string{"h1", "h2"}) || res.Targeted || len(res.Known) != 0 {
		t.Errorf("--host h[12] without inventory: answered %v known %v targeted %v (%v)", answerHosts(res), res.Known, res.Targeted, err)
	}
	// --expect names hosts the inventory does not know.
	res, _ = bare.Ask(ctx, Question{Op: OpInfo, Expect: []string{"h1", "h9"}, Timeout: 2 * time.Second}, nil)
	if !slices.Equal(res.Silent, []string{"h9"}) || res.Inventory != "expect" {
		t.Errorf("--expect h1,h9: silent %v inventory %q, want [h9] expect", res.Silent, res.Inventory)
	}

	// A bad request gets an error answer from every host, with micro's
	// error headers.
	m, err := k.NC.Request(HostSubject("h1", OpPS), []byte(`{"where":"nonsense"}`), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var a Answer
	if json.Unmarshal(m.Data, &a); a.Code != CodeBadRequest || m.Header.Get(micro.ErrorCodeHeader) != "400" ||
		!strings.Contains(m.Header.Get(micro.ErrorHeader), "where:") {
		t.Errorf("bad where: answer %+v, headers %v; want 400 naming where", a, m.Header)
	}

	// Discovery: $SRV.PING.cnbridged reaches every host's service.
	pings := map[string]bool{}
	inbox := k.NC.NewInbox()
	sub, _ := k.NC.SubscribeSync(inbox)
	k.NC.PublishRequest("$SRV.PING."+ServiceName, inbox, nil)
	for len(pings) < 3 {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("pings from %v: %v", pings, err)
		}
		var p micro.Ping
		json.Unmarshal(m.Data, &p)
		pings[p.Metadata["host"]] = p.Version == "1.2.3"
	}
	if !pings["h1"] || !pings["h2"] || !pings["h3"] {
		t.Errorf("pings %v, want h1..h3 with version 1.2.3", pings)
	}

	// A clean stop removes the host from the inventory.
	stop2()
	waitInventory(t, k, "h1", "h3")
}

// TestHeartbeatExpires: the entry of a host that stops without removing it
// (killed) expires after the bucket's TTL.
func TestHeartbeatExpires(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, natstest.JetStream(t.TempDir()))
	nc := connect(t, srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: testInventory.Bucket, TTL: time.Second, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Heartbeat{Host: "killed"})
	if _, err := kv.Put(ctx, KVKey("killed"), b); err != nil {
		t.Fatal(err)
	}
	k := &Asker{NC: nc, Bucket: testInventory.Bucket}
	waitInventory(t, k, "killed")
	waitInventory(t, k)
}

// TestNoJetStream: without JetStream the service answers, the heartbeat
// says once why the host is not in the inventory, and the asker reports
// that it has none.
func TestNoJetStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	startService(t, srv.ClientURL(), "h1", tableSnap(testTable(t)), testInventory)
	k := &Asker{NC: connect(t, srv.ClientURL()), Bucket: testInventory.Bucket}
	waitServices(t, k.NC, 1)
	res, err := k.Ask(context.Background(), Question{Op: OpInfo, Timeout: 2 * time.Second}, nil)
	if err != nil || !slices.Equal(answerHosts(res), []string{"h1"}) {
		t.Fatalf("answered %v (%v)", answerHosts(res), err)
	}
	if res.Inventory != "" || res.InventoryErr == nil || !strings.Contains(res.InventoryErr.Error(), "no JetStream") {
		t.Errorf("inventory %q error %v, want none: no JetStream", res.Inventory, res.InventoryErr)
	}
}

func TestKVKeyAndVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"web-1": "web-1", "web.example.com": "web_example_com", "a b/c": "a_b_c", "": "_"} {
		if got := KVKey(in); got != want {
			t.Errorf("KVKey(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"v1.2.3": "1.2.3", "1.0.0-rc.1": "1.0.0-rc.1", "devel": "0.0.0+devel",
		"v0.3.0-12-gabc123-dirty": "0.3.0-12-gabc123-dirty", "abc 123": "0.0.0+abc-123", "": "0.0.0+unknown"} {
		if got := semverish(in); got != want {
			t.Errorf("semverish(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAskManyAnswers: answers that come in a burst, faster than they are
// handled, are all kept (a channel subscription dropped what came while
// it was full: 2 012 of 10 000 in BenchmarkGather).
func TestAskManyAnswers(t *testing.T) {
	t.Parallel()
	const n = 3000
	srv := natstest.Run(t)
	fleet := connect(t, srv.ClientURL())
	var hosts []string
	for i := range n {
		hosts = append(hosts, fmt.Sprintf("host-%05d", i))
	}
	if _, err := fleet.Subscribe(AllSubject(OpInfo), func(m *nats.Msg) {
		for _, h := range hosts {
			fleet.Publish(m.Reply, []byte(`{"host":"`+h+`","matched":0}`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	fleet.Flush()
	k := &Asker{NC: connect(t, srv.ClientURL())}
	slow := 0
	res, err := k.Ask(context.Background(), Question{Op: OpInfo, Expect: hosts, Timeout: 20 * time.Second}, func(*Answer) {
		if slow < 50 {
			slow++
			time.Sleep(time.Millisecond) // the first answers are printed slowly
		}
	})
	if err != nil || len(res.Answers) != n || len(res.Silent) != 0 {
		t.Fatalf("%d answers, %d silent (%v); want %d, none", len(res.Answers), len(res.Silent), err, n)
	}
}

// TestServiceWaitsForServer: a service started while its server is down
// connects when the server comes and then answers (the daemon runs
// meanwhile).
func TestServiceWaitsForServer(t *testing.T) {
	t.Parallel()
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	startService(t, url, "h1", tableSnap(testTable(t)), Inventory{})
	natstest.Run(t, natstest.Port(port))
	k := &Asker{NC: connect(t, url)}
	waitServices(t, k.NC, 1)
	res, err := k.Ask(context.Background(), Question{Op: OpInfo, Hosts: "h1", Timeout: 5 * time.Second}, nil)
	if err != nil || len(res.Answers) != 1 || res.Answers[0].Info == nil {
		t.Fatalf("answers %+v (%v)", res, err)
	}
}
