package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cnbridged/cnbridged/internal/otlptest"
)

// otlpBatch is the records per export of both the daemon's otlp sink (its
// default batch_size) and the bare exporter.
const otlpBatch = 512

// otlpRow measures the otlp sink (gRPC) against the Collector's OTLP
// receiver in the harness process, with a bare OTLP exporter's rate into
// the same receiver beside it: the official gRPC client exporting
// ready-made batches of the same size and body, one at a time, each
// waiting for its answer, as the sink does.
func (h *harness) otlpRow() (*row, map[string]any) {
	r := &row{Name: "otlp (grpc)"}
	info := map[string]any{}
	var got atomic.Int64
	rcv, err := otlptest.Start(otlptest.GRPC, "", func(_ context.Context, ld plog.Logs) error {
		got.Add(int64(ld.LogRecordCount()))
		return nil
	})
	if err != nil {
		r.Skipped = err.Error()
		return r, info
	}
	defer rcv.Stop()

	rawRate, err := bareOTLP(rcv.Endpoint(), 200000, &got)
	if err != nil {
		r.Skipped = "bare exporter: " + err.Error()
		return r, info
	}
	info["bare_exporter_rate"] = rawRate
	info["batch_size"] = otlpBatch
	h.logf("bare OTLP exporter: %.0f records/s", rawRate)

	d, err := h.startDaemon("otlp", synthConfig(fmt.Sprintf(`{type: otlp, protocol: grpc, endpoint: %q}`, rcv.Endpoint())), nil)
	if err != nil {
		r.Skipped = err.Error()
		return r, info
	}
	save := h.rates
	h.rates = nil
	for _, f := range []float64{0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6} {
		h.rates = append(h.rates, float64(int(f*rawRate/1000))*1000)
	}
	*r = *h.ladder(r.Name, func(rate float64) (trial, error) { return h.daemonTrial(d, rate, got.Load) })
	h.rates = save
	r.PeakRSSMiB = float64(statusKiB(d.pid, "VmHWM")) / 1024
	r.Target = "zero-loss rate vs a bare OTLP exporter (same receiver, batch size and body)"
	r.TargetRatio = r.ZeroLossRate / rawRate
	d.stop()
	return r, info
}

// bareOTLP exports n records in batches of otlpBatch to endpoint with the
// pdata gRPC client, one export at a time, and returns records per second
// from the first export to the last answer. Each LogRecord carries the
// body the sink would (the native line of a synthetic message, as a map)
// and a few attributes.
func bareOTLP(endpoint string, n int, got *atomic.Int64) (float64, error) {
	cc, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	client := plogotlp.NewGRPCClient(cc)
	logs := plog.NewLogs()
	rl := logs.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("host.name", "bench")
	rl.Resource().Attributes().PutStr("service.name", "cnbench")
	recs := rl.ScopeLogs().AppendEmpty().LogRecords()
	now := time.Now()
	for i := range otlpBatch {
		lr := recs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("INFO")
		lr.SetEventName("cnbridged.message")
		body := lr.Body().SetEmptyMap()
		body.PutStr("time", now.UTC().Format(time.RFC3339Nano))
		body.PutStr("host", "bench")
		for _, k := range []string{"idx", "val", "seq", "ack", "flags", "len", "sender"} {
			body.PutInt(k, int64(i))
		}
		body.PutStr("data", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==")
	}
	req := plogotlp.NewExportRequestFromLogs(logs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := got.Load()
	batches := (n + otlpBatch - 1) / otlpBatch
	t0 := time.Now()
	for range batches {
		if _, err := client.Export(ctx, req); err != nil {
			return 0, err
		}
	}
	el := time.Since(t0)
	total := int64(batches * otlpBatch)
	if d := got.Load() - start; d < total {
		return 0, fmt.Errorf("the receiver took %d of %d records", d, total)
	}
	return float64(total) / el.Seconds(), nil
}
