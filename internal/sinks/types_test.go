package sinks

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestTypes: every entry of the sink type table gives a fresh config
// whose keys are all declared (a mapstructure tag on every field), which
// defaults, validates and builds its sink from an Env alone — what config
// decoding, validation, the daemon and check rely on.
func TestTypes(t *testing.T) {
	srv := natstest.Run(t)
	defer srv.Shutdown()
	minimal := map[string]func(TypeConfig){
		"stdout": func(TypeConfig) {},
		"file":   func(c TypeConfig) { c.(*FileSinkConfig).Path = filepath.Join(t.TempDir(), "out.jsonl") },
		"nats":   func(c TypeConfig) { c.(*NATSConfig).URL = srv.ClientURL() },
		"otlp":   func(c TypeConfig) { c.(*OTLPSinkConfig).Endpoint = "127.0.0.1:1" }, // nothing listens: it connects when it exports
	}
	types := Types()
	if got := strings.Join(TypeNames(), " "); got != "file nats otlp stdout" {
		t.Errorf("TypeNames() = %q", got)
	}
	for name, newConfig := range types {
		t.Run(name, func(t *testing.T) {
			a, b := newConfig(), newConfig()
			if a == b {
				t.Fatal("the table hands out one config twice")
			}
			v := reflect.ValueOf(a).Elem()
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.IsExported() && f.Tag.Get("mapstructure") == "" {
					t.Errorf("field %s has no mapstructure tag: declare its key, or \"-\"", f.Name)
				}
			}
			set, ok := minimal[name]
			if !ok {
				t.Fatalf("no minimal config for type %s in this test", name)
			}
			set(a)
			d := DaemonKeys{Host: "h"}
			a.SetDefaults(d)
			if err := a.Validate(d); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if size, maxBytes := a.QueueDefaults(); size < 1 || maxBytes < minQueueMaxBytes {
				t.Errorf("QueueDefaults() = %d, %d", size, maxBytes)
			}
			var out bytes.Buffer
			s, err := a.New(Env{Name: "s", Host: "h", Encoder: event.NewEncoder("h"), Counters: testCountersFor(), Log: zaptest.NewLogger(t), Stdout: &out})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			closeSink(t, s)
		})
	}
}
