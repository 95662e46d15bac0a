package sinks

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the server side of compression: gzip
	"google.golang.org/grpc/metadata"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/otlptest"
	"github.com/cnbridged/cnbridged/internal/proctable"
	"github.com/cnbridged/cnbridged/internal/schema"
)

var _ Sink = (*OTLP)(nil)
var _ Pender = (*OTLP)(nil)
var _ Readier = (*OTLP)(nil)

func otlpConfig(protocol, endpoint string) OTLPConfig {
	cfg := OTLPConfig{Protocol: protocol, Endpoint: endpoint, Name: "otlp", Host: "h1"}
	cfg.SetDefaults(DaemonKeys{})
	cfg.Timeout = 2 * time.Second
	cfg.DrainTimeout = 5 * time.Second
	cfg.RetryWait = 20 * time.Millisecond
	cfg.MaxRetryWait = 200 * time.Millisecond
	cfg.BatchSize = 100
	return cfg
}

func newOTLPForTest(t testing.TB, cfg OTLPConfig, c *Counters, log *zap.Logger) *OTLP {
	t.Helper()
	s, err := NewOTLP(cfg, event.NewEncoder(cfg.Host), c, nil, log)
	if err != nil {
		t.Fatalf("NewOTLP: %v", err)
	}
	return s
}

func startReceiver(t testing.TB, protocol string, rec *otlptest.Recorder) *otlptest.Receiver {
	t.Helper()
	r, err := otlptest.Start(protocol, "", rec.Consume)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// bodies returns the LogRecords' bodies as JSON objects (numbers as
// float64, as the conformance suite reads them).
func bodies(t testing.TB, rec *otlptest.Recorder) []map[string]any {
	t.Helper()
	var out []map[string]any
	rec.Each(func(_ pcommon.Resource, lr plog.LogRecord) {
		b, err := json.Marshal(lr.Body().AsRaw())
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	})
	return out
}

// TestOTLPConformance runs the sink conformance suite against the
// Collector's OTLP receiver, over gRPC and over HTTP.
func TestOTLPConformance(t *testing.T) {
	leakCheck(t)
	for _, proto := range []string{OTLPGRPC, OTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			conformance{
				open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
					rec := &otlptest.Recorder{}
					r := startReceiver(t, proto, rec)
					s := newOTLPForTest(t, otlpConfig(proto, r.Endpoint()), c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
					// Every record counted sent was answered by the receiver,
					// which had handed it to the consumer by then.
					return s, func() []map[string]any { return bodies(t, rec) }
				},
				broken: func(t *testing.T, c *Counters) Sink {
					cfg := otlpConfig(proto, refusingEndpoint(t, proto))
					cfg.DrainTimeout = 300 * time.Millisecond
					return newOTLPForTest(t, cfg, c, zap.NewNop())
				},
			}.run(t)
		})
	}
}

// refusingEndpoint is a loopback port nothing listens on.
func refusingEndpoint(t testing.TB, proto string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if proto == OTLPHTTP {
		return "http://" + addr
	}
	return addr
}

// TestOTLPLogRecord: each record is a LogRecord with its time, severity,
// event name, semantic-convention attributes and the schema's object as
// its body, under the resource host.name, service.name, service.version.
func TestOTLPLogRecord(t *testing.T) {
	leakCheck(t)
	rec := &otlptest.Recorder{}
	r := startReceiver(t, OTLPGRPC, rec)
	cfg := otlpConfig(OTLPGRPC, r.Endpoint())
	cfg.Schema, cfg.Product = schema.ECS, schema.Product{Version: "1.2.3"}
	c := testCountersFor()
	s := newOTLPForTest(t, cfg, c, zaptest.NewLogger(t))
	recs := otlpRecords()
	for i := range recs {
		if err := s.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	checkCounts(t, c, counts{sent: float64(len(recs))})

	var got []plog.LogRecord
	rec.Each(func(res pcommon.Resource, lr plog.LogRecord) {
		want := map[string]any{"host.name": "h1", "service.name": "cnbridged", "service.version": "1.2.3"}
		if diff := cmpMap(want, res.Attributes().AsRaw()); diff != "" {
			t.Errorf("resource (-want +got):\n%s", diff)
		}
		got = append(got, lr)
	})
	if len(got) != len(recs) {
		t.Fatalf("%d LogRecords, want %d", len(got), len(recs))
	}
	exec, exit, loss := got[0], got[1], got[2]
	if exec.Timestamp() != pcommon.Timestamp(recs[0].Time) || exec.ObservedTimestamp() != exec.Timestamp() {
		t.Errorf("exec times %v %v, want the record's %v", exec.Timestamp(), exec.ObservedTimestamp(), recs[0].Time)
	}
	if exec.SeverityNumber() != plog.SeverityNumberInfo || exec.SeverityText() != "INFO" || exec.EventName() != "cnbridged.process.exec" {
		t.Errorf("exec severity %v %q, event %q", exec.SeverityNumber(), exec.SeverityText(), exec.EventName())
	}
	wantExec := map[string]any{
		"process.pid": int64(1780), "process.parent_pid": int64(1779),
		"process.executable.path": "/usr/bin/sleep", "process.executable.name": "sleep",
		"process.command": "sleep", "process.command_args": []any{"sleep", "0.1"}, "process.args_count": int64(2),
		"process.owner": "root", "process.user.id": int64(0), "process.user.name": "root",
		"process.real_user.id": int64(0), "process.real_user.name": "root",
		"process.working_directory": "/tmp", "process.creation.time": "2026-11-30T16:03:47.154920112Z",
		"process.linux.cgroup": "/kubepods/pod0c5e8a52-1a2b-4c3d-9e8f-0123456789ab/abc",
		"container.id":         "abc", "k8s.pod.uid": "0c5e8a52-1a2b-4c3d-9e8f-0123456789ab",
	}
	if diff := cmpMap(wantExec, exec.Attributes().AsRaw()); diff != "" {
		t.Errorf("exec attributes (-want +got):\n%s", diff)
	}
	body := exec.Body().Map().AsRaw()
	if ecs, _ := body["ecs"].(map[string]any); ecs["version"] != schema.ECSVersion {
		t.Errorf("exec body is not the ECS document: %v", body)
	}
	if code, ok := exit.Attributes().Get("process.exit.code"); !ok || code.Int() != 1 || exit.EventName() != "cnbridged.process.exit" {
		t.Errorf("exit: process.exit.code %v, event %q", code.AsRaw(), exit.EventName())
	}
	if loss.SeverityNumber() != plog.SeverityNumberWarn || loss.EventName() != "cnbridged.loss" || loss.Attributes().Len() != 0 {
		t.Errorf("loss: severity %v, event %q, attributes %v", loss.SeverityNumber(), loss.EventName(), loss.Attributes().AsRaw())
	}
	for _, lr := range got {
		for _, e := range validateSemconv(t, lr.Attributes()) {
			t.Error(e)
		}
	}
}

// otlpRecords are an enriched exec and exit and a loss marker.
func otlpRecords() []event.Record {
	start, _ := time.Parse(time.RFC3339Nano, "2026-11-30T16:03:47.154920112Z")
	proc := &proctable.Process{EntityID: "b:1780:1", PID: 1780, TGID: 1780, PPID: 1779, StartTime: start.UnixNano(),
		Exe: "/usr/bin/sleep", Cmdline: []string{"sleep", "0.1"}, Cwd: "/tmp", User: "root", Comm: "sleep",
		Cgroup: "/kubepods/pod0c5e8a52-1a2b-4c3d-9e8f-0123456789ab/abc", ContainerID: "abc", PodUID: "0c5e8a52-1a2b-4c3d-9e8f-0123456789ab"}
	parent := &proctable.Process{EntityID: "b:1779:1", PID: 1779, TGID: 1779, Exe: "/usr/bin/dash", Cmdline: []string{"sh"}}
	now := start.UnixNano() + 5e6
	msg := cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 9, Len: 40}
	return []event.Record{
		{Time: now, Targets: 1, Msg: msg, HasProc: true, Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 1780, TGID: 1780},
			Enrich: event.EnrichDone, Enriched: &event.Enrichment{Process: proc, Parent: parent}},
		{Time: now + 1e8, Targets: 1, Msg: msg, HasProc: true, Proc: cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: 1780, TGID: 1780, ExitCode: 256, ExitSignal: 17},
			Enrich: event.EnrichDone, Enriched: &event.Enrichment{Process: proc, Parent: parent, DurationNs: 1e8, HasDuration: true}},
		{Kind: event.KindLoss, Time: now + 2e8, Targets: 1, Msg: msg, Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 3, ToSeq: 4, Lost: 2}},
	}
}

// partialServer answers every export over gRPC and HTTP with a partial
// success that rejects reject of its records, built with the official
// types.
type partialServer struct {
	plogotlp.UnimplementedGRPCServer
	reject int64
	mu     sync.Mutex
	tenant []string // the X-Tenant header of each export
}

func (p *partialServer) saw(tenant string) {
	p.mu.Lock()
	p.tenant = append(p.tenant, tenant)
	p.mu.Unlock()
}

func (p *partialServer) answer() plogotlp.ExportResponse {
	resp := plogotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedLogRecords(p.reject)
	resp.PartialSuccess().SetErrorMessage("attribute limit exceeded")
	return resp
}

func (p *partialServer) Export(ctx context.Context, _ plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p.saw(strings.Join(md.Get("x-tenant"), ","))
	return p.answer(), nil
}

func (p *partialServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.saw(r.Header.Get("X-Tenant"))
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	req := plogotlp.NewExportRequest()
	b, _ := io.ReadAll(body)
	if err := req.UnmarshalProto(b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, _ = p.answer().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// TestOTLPPartialSuccess: the records a receiver rejects in a partial
// success are counted failed, with its message logged; the rest sent.
// The exports carry the configured headers, gzip-compressed.
func TestOTLPPartialSuccess(t *testing.T) {
	leakCheck(t)
	for _, proto := range []string{OTLPGRPC, OTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			ps := &partialServer{reject: 3}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			endpoint := l.Addr().String()
			if proto == OTLPGRPC {
				gs := grpc.NewServer()
				plogotlp.RegisterGRPCServer(gs, ps)
				go func() { _ = gs.Serve(l) }()
				defer gs.Stop()
			} else {
				hs := &http.Server{Handler: ps, ReadHeaderTimeout: time.Second}
				go func() { _ = hs.Serve(l) }()
				defer hs.Close()
				endpoint = "http://" + endpoint
			}
			core, logs := observer.New(zapcore.WarnLevel)
			c := testCountersFor()
			cfg := otlpConfig(proto, endpoint)
			cfg.BatchSize = 10
			cfg.Headers = map[string]string{"X-Tenant": "blue"}
			cfg.Compression = "gzip"
			s := newOTLPForTest(t, cfg, c, zap.New(core))
			writeN(t, s, 0, 25) // batches of 10, 10 and 5: 3 rejected of each
			closeSink(t, s)
			checkCounts(t, c, counts{sent: 25 - 9, failed: 9})
			if s.exports[otlpPartial].Load() != 3 {
				t.Errorf("partial exports %d, want 3", s.exports[otlpPartial].Load())
			}
			found := logs.FilterMessageSnippet("rejected").FilterField(zap.String("message", "attribute limit exceeded"))
			if found.Len() == 0 {
				t.Errorf("no warning carries the receiver's message; logged: %v", logs.All())
			}
			ps.mu.Lock()
			defer ps.mu.Unlock()
			if strings.Join(ps.tenant, " ") != "blue blue blue" {
				t.Errorf("X-Tenant of the exports %q, want blue on each", ps.tenant)
			}
		})
	}
}

// TestOTLPRefused: an export the receiver refuses for good (a permanent
// error) counts its records failed and makes the sink unready with the
// reason; one refused for now (retryable) is sent again and delivered.
func TestOTLPRefused(t *testing.T) {
	leakCheck(t)
	for _, proto := range []string{OTLPGRPC, OTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			var mu sync.Mutex
			refuse := consumererror.NewPermanent(errors.New("no such tenant"))
			rec := &otlptest.Recorder{Refuse: func(plog.Logs) error { mu.Lock(); defer mu.Unlock(); return refuse }}
			r := startReceiver(t, proto, rec)
			c := testCountersFor()
			s := newOTLPForTest(t, otlpConfig(proto, r.Endpoint()), c, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
			writeN(t, s, 0, 10)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			cntest.WaitFor(t, 10*time.Second, "the refusal counted", func() bool { return readCounts(c).failed == 10 })
			if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "refuses exports") {
				t.Errorf("Ready() = %v, want the refusal", err)
			}
			mu.Lock()
			refuse = errors.New("busy") // retryable: the receiver answers UNAVAILABLE / 503
			mu.Unlock()
			writeN(t, s, 10, 20)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			cntest.WaitFor(t, 10*time.Second, "a retry", func() bool { return s.exports[otlpRetry].Load() > 0 })
			if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "retrying") {
				t.Errorf("Ready() = %v, want the retry named", err)
			}
			mu.Lock()
			refuse = nil
			mu.Unlock()
			closeSink(t, s)
			checkCounts(t, c, counts{sent: 10, failed: 10})
			if err := s.Ready(); err != nil {
				t.Errorf("Ready() = %v after a success", err)
			}
			checkSeqs(t, bodies(t, rec), 10, 10)
		})
	}
}

// TestOTLPOutage: the receiver is gone for 5 s while records keep coming
// through a runner (about 2 000/s). Every record offered is counted once
// (sent + failed + dropped = offered); with the default queue none is
// lost, and the receiver has each at least once, duplicates at most a
// batch per retried export.
func TestOTLPOutage(t *testing.T) {
	leakCheck(t)
	for _, proto := range []string{OTLPGRPC, OTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			rec := &otlptest.Recorder{}
			r := startReceiver(t, proto, rec)
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			c := m.Counters("s")
			cfg := otlpConfig(proto, r.Endpoint())
			cfg.MaxInFlight = 1000
			s := newOTLPForTest(t, cfg, c, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
			run := NewRunner(RunnerConfig{Name: "s", QueueSize: DefaultOTLPQueueSize, QueueMaxBytes: DefaultOTLPQueueMaxBytes, FlushInterval: 100 * time.Millisecond}, s, m, zaptest.NewLogger(t))
			done := make(chan error, 1)
			go func() { done <- run.Run(context.Background()) }()

			pool := event.NewPool()
			offered := 0
			offerFor := func(d time.Duration) {
				end := time.Now().Add(d)
				for time.Now().Before(end) {
					offer(run, pool, offered, offered+20)
					offered += 20
					time.Sleep(10 * time.Millisecond)
				}
			}
			offerFor(time.Second)
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			outage := time.Now()
			offerFor(time.Second)
			cntest.WaitFor(t, 5*time.Second, "the sink to report the outage", func() bool { return s.Ready() != nil })
			t.Logf("ready during the outage: %v", s.Ready())
			offerFor(5*time.Second - time.Since(outage))
			if err := r.Restart(); err != nil {
				t.Fatal(err)
			}
			offerFor(time.Second)
			run.Stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			l := readCounts(c)
			if l.sent+l.failed+l.dropped != float64(offered) {
				t.Errorf("sent %v + failed %v + dropped %v ≠ %d offered", l.sent, l.failed, l.dropped, offered)
			}
			if l.sent != float64(offered) {
				t.Errorf("sent %v of %d: the queue should hold a 5 s outage (%+v)", l.sent, offered, l)
			}
			seen := map[float64]int{}
			for _, o := range bodies(t, rec) {
				seen[o["seq"].(float64)]++
			}
			dups := 0
			for i := range offered {
				switch n := seen[float64(i)]; {
				case n == 0:
					t.Fatalf("record %d never reached the receiver", i)
				case n > 1:
					dups += n - 1
				}
			}
			retries := int(s.exports[otlpRetry].Load())
			t.Logf("%d offered, %d exports retried, %d duplicates", offered, retries, dups)
			if dups > retries*cfg.BatchSize {
				t.Errorf("%d duplicates, more than a batch (%d) per retried export (%d)", dups, cfg.BatchSize, retries)
			}
		})
	}
}

func cmpMap(want, got map[string]any) string {
	var b strings.Builder
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			fmt.Fprintf(&b, "- %s: %v\n", k, w)
			continue
		}
		if fmt.Sprint(g) != fmt.Sprint(w) {
			fmt.Fprintf(&b, "- %s: %v\n+ %s: %v\n", k, w, k, g)
		}
	}
	return b.String()
}

// TestOTLPBatchBytes: a batch is sealed before its bodies pass
// otlpMaxBatchBytes, whatever batch_size allows, so that long command
// lines do not make a request the receiver refuses for its size.
func TestOTLPBatchBytes(t *testing.T) {
	leakCheck(t)
	rec := &otlptest.Recorder{}
	r := startReceiver(t, OTLPGRPC, rec)
	cfg := otlpConfig(OTLPGRPC, r.Endpoint())
	cfg.BatchSize = 512
	c := testCountersFor()
	s := newOTLPForTest(t, cfg, c, zaptest.NewLogger(t))
	long := []byte(strings.Repeat("x", 8<<10))
	const n = 600 // 600 × 8 KiB+ bodies: about 6.6 MiB, over 4 MiB in one batch
	for i := range n {
		r := event.Record{Time: time.Now().UnixNano(), Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 99, Val: 1}, Seq: uint32(i), Len: uint16(len(long)), Data: long}}
		if err := s.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	checkCounts(t, c, counts{sent: n})
	if got := s.exports[otlpOK].Load(); got < 4 {
		t.Errorf("%d exports, want 4 or more (2 MiB each)", got)
	}
}
