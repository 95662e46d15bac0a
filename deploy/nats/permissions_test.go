package natsdeploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// fleetSubject is the fleet subject scheme (docs/nats.md).
const fleetSubject = "cn.{host}.proc.{event}.{container}"

// authServer runs a JetStream server with fleet-auth.conf's users, plus an
// admin the test uses to create the stream.
func authServer(t *testing.T) *server.Server {
	t.Helper()
	t.Setenv("CN_READER_PASSWORD", "reader-secret")
	t.Setenv("CN_QUERIER_PASSWORD", "querier-secret")
	o := loadConf(t, "fleet-auth.conf")
	o.Port = -1
	o.JetStream, o.StoreDir = true, t.TempDir()
	o.Users = append(o.Users, &server.User{Username: "admin", Password: "admin"})
	s := startServer(t, o)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("admin", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "CN", Subjects: []string{"cn.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	return s
}

// seedFile copies a host's test seed to a 0600 file (git keeps no modes).
func seedFile(t *testing.T, host string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", host+".nk"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), host+".nk")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seq numbers the test's records: each is a kernel event of its own, with
// a Nats-Msg-Id of its own (two records with one seq on one CPU are one
// event to JetStream, which keeps the first).
var seq atomic.Uint32

func procRecord(what cnmsg.What, pid uint32) *event.Record {
	r := &event.Record{Time: time.Now().UnixNano(), HasProc: true}
	r.Msg.ID = cnmsg.ID{Idx: 1, Val: 1}
	r.Msg.Seq = seq.Add(1)
	r.Proc = cnmsg.ProcEvent{What: what, PID: pid, TGID: pid}
	return r
}

// inContainer is r enriched with a process in container id.
func inContainer(r *event.Record, id string) *event.Record {
	r.Enrich = event.EnrichDone
	r.Enriched = &event.Enrichment{Process: &proctable.Process{PID: r.Proc.PID, TGID: r.Proc.TGID, ContainerID: id}}
	return r
}

// reader subscribes as the read-only operator user.
func reader(t *testing.T, s *server.Server, subject string) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("reader", "reader-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// publish writes records through a NATS sink that connects with seed's key
// and calls itself host; it returns the sink's sent and failed counts.
func publish(t *testing.T, s *server.Server, jetStream bool, seed, host string, recs ...*event.Record) (sent, failed float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := sinks.NewMetrics(reg).Counters("nats")
	sk, err := sinks.NewNATS(sinks.NATSConfig{
		Name: "nats", URL: s.ClientURL(), Subject: fleetSubject, Format: "json", Host: host,
		JetStream: jetStream, NkeySeedFile: seed, AckTimeout: time.Second, DrainTimeout: 5 * time.Second,
	}, event.NewEncoder(host), c, sinks.NewNATSMetrics(reg), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, r := range recs {
		if err := sk.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	sk.Flush(ctx)
	sk.Close(ctx)
	return testutil.ToFloat64(c.Sent), testutil.ToFloat64(c.Failed)
}

// TestHostPublishPermissions: with fleet-auth.conf, a host's key publishes
// on its own subjects, and a host that publishes on another host's subjects
// is refused by the server, which its sink counts as failed.
func TestHostPublishPermissions(t *testing.T) {
	s := authServer(t)
	web1 := seedFile(t, "web1")
	for _, js := range []bool{false, true} {
		name := "core"
		if js {
			name = "jetstream"
		}
		t.Run(name, func(t *testing.T) {
			sub := reader(t, s, "cn.>")
			sent, failed := publish(t, s, js, web1, "web1", procRecord(cnmsg.ProcExec, 10), procRecord(cnmsg.ProcExit, 10))
			if sent != 2 || failed != 0 {
				t.Errorf("own subjects: sent %v, failed %v; want 2, 0", sent, failed)
			}
			for _, want := range []string{"cn.web1.proc.exec.-", "cn.web1.proc.exit.-"} {
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil || m.Subject != want {
					t.Fatalf("reader got %v (%v), want a message on %s", m, err, want)
				}
			}
			// web1's key, claiming to be web2.
			sent, failed = publish(t, s, js, web1, "web2", procRecord(cnmsg.ProcExec, 11))
			// Core NATS: the server refuses the message (checked below) with
			// an asynchronous -ERR, but the sink's confirmation (a PING round
			// trip) does not see it, so the sink counts it as sent: a known
			// defect of the core NATS sink, reported to its owner. A
			// JetStream sink gets no acknowledgement and counts it failed.
			t.Logf("%s sink publishing on another host's subjects: sent %v, failed %v", name, sent, failed)
			if js && (sent != 0 || failed != 1) {
				t.Errorf("another host's subjects: sent %v, failed %v; want 0, 1", sent, failed)
			}
			if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
				t.Errorf("reader got %s on %s: the server let web1 publish as web2", m.Data, m.Subject)
			}
		})
	}
}

// TestFleetSubjectFiltering: the subject scheme lets the server filter by
// host, by event and by container.
func TestFleetSubjectFiltering(t *testing.T) {
	const cid = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"
	s := authServer(t)
	byHost := reader(t, s, "cn.web2.>")
	byEvent := reader(t, s, "cn.*.proc.exit.>")
	byContainer := reader(t, s, "cn.*.proc.*."+cid)
	publish(t, s, false, seedFile(t, "web1"), "web1", procRecord(cnmsg.ProcExec, 1), inContainer(procRecord(cnmsg.ProcExit, 1), cid))
	publish(t, s, false, seedFile(t, "web2"), "web2", inContainer(procRecord(cnmsg.ProcExec, 2), cid), procRecord(cnmsg.ProcExit, 2))
	got := func(sub *nats.Subscription) []string {
		var subjects []string
		for {
			m, err := sub.NextMsg(500 * time.Millisecond)
			if err != nil {
				return subjects
			}
			subjects = append(subjects, m.Subject)
		}
	}
	tests := []struct {
		name string
		sub  *nats.Subscription
		want []string
	}{
		{"host", byHost, []string{"cn.web2.proc.exec." + cid, "cn.web2.proc.exit.-"}},
		{"event", byEvent, []string{"cn.web1.proc.exit." + cid, "cn.web2.proc.exit.-"}},
		{"container", byContainer, []string{"cn.web1.proc.exit." + cid, "cn.web2.proc.exec." + cid}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, got(tt.sub)); diff != "" {
			t.Errorf("filter by %s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestReaderIsReadOnly: fleet-auth.conf's operator user reads the stream
// (an ordered consumer, as cnbridged tap --since uses) but cannot delete or
// purge it. Before, its "$JS.API.>" allowed both.
func TestReaderIsReadOnly(t *testing.T) {
	s := authServer(t)
	if sent, _ := publish(t, s, true, seedFile(t, "web1"), "web1", procRecord(cnmsg.ProcExec, 42)); sent != 1 {
		t.Fatalf("web1 sent %v, want 1", sent)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("reader", "reader-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "CN")
	if err != nil {
		t.Fatalf("reader: stream info: %v", err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("reader: ordered consumer: %v", err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || !strings.HasPrefix(m.Subject(), "cn.web1.proc.exec.") {
		t.Fatalf("reader: next message %v, %v; want one on cn.web1.proc.exec.…", m, err)
	}
	// A refused request gets no reply: each waits out its own second.
	denied, cancelDenied := context.WithTimeout(ctx, time.Second)
	defer cancelDenied()
	if err := st.Purge(denied); err == nil {
		t.Error("reader purged the stream")
	}
	denied, cancelDenied = context.WithTimeout(ctx, time.Second)
	defer cancelDenied()
	if err := js.DeleteStream(denied, "CN"); err == nil {
		t.Error("reader deleted the stream")
	}
}
