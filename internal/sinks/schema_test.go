package sinks

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/cntest"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
	"github.com/cnbridged/cnbridged/internal/schema"
)

// schemaView reads back what the conformance suite looks at (seq and
// data when the record has them; type, for a record that is not a message
// of the kernel or of another connector id) from a document of schema s,
// checking that it is one.
func schemaView(t *testing.T, s schema.Name, objs []map[string]any) []map[string]any {
	t.Helper()
	out := make([]map[string]any, len(objs))
	for i, o := range objs {
		at := map[string]any{}
		put := func(k string, v any) {
			if v != nil {
				at[k] = v
			}
		}
		switch s {
		case schema.ECS:
			if ecs, _ := o["ecs"].(map[string]any); ecs["version"] != schema.ECSVersion {
				t.Fatalf("not an ECS %s document: %v", schema.ECSVersion, o)
			}
			ev, _ := o["event"].(map[string]any)
			cb, _ := o["cnbridged"].(map[string]any)
			conn, _ := cb["connector"].(map[string]any)
			put("seq", ev["sequence"])
			put("data", conn["data"])
			if cb["proc"] == nil && conn == nil {
				put("type", ev["action"])
			}
		case schema.OCSF:
			md, _ := o["metadata"].(map[string]any)
			if md["version"] != schema.OCSFVersion {
				t.Fatalf("not an OCSF %s event: %v", schema.OCSFVersion, o)
			}
			um, _ := o["unmapped"].(map[string]any)
			put("seq", um["seq"])
			put("data", um["data"])
			if um["proc"] == nil && md["event_code"] != "message" {
				put("type", md["event_code"])
			}
		}
		out[i] = at
	}
	return out
}

// TestSchemaConformance runs the sink conformance suite on the line sinks
// writing ECS and OCSF documents.
func TestSchemaConformance(t *testing.T) {
	for _, s := range []schema.Name{schema.ECS, schema.OCSF} {
		body := Body{Schema: s, Product: schema.Product{Version: "test"}}
		t.Run("stdout/"+string(s), func(t *testing.T) {
			conformance{
				open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
					var buf bytes.Buffer
					return NewStreamBody(&buf, event.NewEncoder("h"), body, c), func() []map[string]any {
						return schemaView(t, s, decodeLines(t, buf.Bytes()))
					}
				},
				broken: func(t *testing.T, c *Counters) Sink {
					return NewStreamBody(failingWriter{}, event.NewEncoder("h"), body, c)
				},
			}.run(t)
		})
		t.Run("file/"+string(s), func(t *testing.T) {
			conformance{open: func(t *testing.T, c *Counters) (Sink, func() []map[string]any) {
				path := filepath.Join(t.TempDir(), "out.jsonl")
				f, err := NewFile(FileConfig{Path: path, SchemaConfig: SchemaConfig{Schema: s}, Product: body.Product}, event.NewEncoder("h"), c, zaptest.NewLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				return f, func() []map[string]any {
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					return schemaView(t, s, decodeLines(t, b))
				}
			}}.run(t)
		})
	}
}

// schemaRecords are a process event, a loss marker and a gap.
func schemaRecords() []event.Record {
	exec := procRecord(1, 7, cnmsg.ProcExec, 42)
	loss := event.Record{Kind: event.KindLoss, Time: exec.Time, Targets: 1, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}},
		Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 4, ToSeq: 6, Lost: 3}}
	gap := event.Record{Kind: event.KindGap, Time: exec.Time, Targets: 1, Gap: &event.Gap{From: exec.Time - 2e9, To: exec.Time, PIDsAllocated: 5}}
	return []event.Record{exec, loss, gap}
}

// TestNativeSchemaUnchanged: schema native (and none given) writes
// exactly the line the encoder writes.
func TestNativeSchemaUnchanged(t *testing.T) {
	enc := event.NewEncoder("h")
	var want []byte
	recs := schemaRecords()
	for i := range recs {
		want = enc.AppendJSON(want, &recs[i])
	}
	for _, b := range []Body{{}, {Schema: schema.Native}} {
		var buf bytes.Buffer
		s := NewStreamBody(&buf, enc, b, testCountersFor())
		for i := range recs {
			if err := s.Write(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		closeSink(t, s)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("schema %q wrote\n%s\nwant\n%s", b.Schema, buf.Bytes(), want)
		}
	}
}

// TestNATSSchemaBody: a format json NATS sink publishes the schema's
// document as the message body.
func TestNATSSchemaBody(t *testing.T) {
	leakCheck(t)
	srv := natstest.Run(t)
	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	var got [][]byte
	if _, err := sub.Subscribe("cn.h1.>", func(m *nats.Msg) {
		mu.Lock()
		got = append(got, m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(srv.ClientURL())
	cfg.Schema, cfg.Product = schema.OCSF, schema.Product{Version: "9.9"}
	c := testCountersFor()
	s := newSink(t, cfg, c, zaptest.NewLogger(t))
	recs := schemaRecords()
	for i := range recs {
		if err := s.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	checkCounts(t, c, counts{sent: 3})
	cntest.WaitFor(t, 5*time.Second, "3 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []float64{1007, 0, 0} { // Process Activity, then two Base Events
		o := decodeBody(t, got[i])
		md, _ := o["metadata"].(map[string]any)
		prod, _ := md["product"].(map[string]any)
		if o["class_uid"] != want || prod["version"] != "9.9" {
			t.Errorf("message %d: class_uid %v, product %v; want class %v of version 9.9: %s", i, o["class_uid"], prod, want, got[i])
		}
	}
}
