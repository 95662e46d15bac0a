package otlptest_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/otlptest"
	"github.com/cnbridged/cnbridged/internal/sinks"

	"github.com/prometheus/client_golang/prometheus"
)

const collectorConfig = "../../deploy/otel/collector.yaml"

// TestCollectorConfig: deploy/otel/collector.yaml loads with the
// Collector's config loader; its pipelines name components it defines,
// with a logs pipeline from the otlp receiver; the receiver's section
// decodes strictly into the receiver's own config and validates; and the
// receiver started from it (on free ports) takes what cnbridged's otlp
// sink exports over gRPC and HTTP.
func TestCollectorConfig(t *testing.T) {
	conf, err := confmaptest.LoadConf(collectorConfig)
	if err != nil {
		t.Fatalf("loading %s: %v", collectorConfig, err)
	}
	var top struct {
		Receivers  map[string]any `mapstructure:"receivers"`
		Processors map[string]any `mapstructure:"processors"`
		Exporters  map[string]any `mapstructure:"exporters"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `mapstructure:"receivers"`
				Processors []string `mapstructure:"processors"`
				Exporters  []string `mapstructure:"exporters"`
			} `mapstructure:"pipelines"`
		} `mapstructure:"service"`
	}
	if err := conf.Unmarshal(&top); err != nil {
		t.Fatalf("%s: %v", collectorConfig, err)
	}
	logs, ok := top.Service.Pipelines["logs"]
	if !ok || !slices.Contains(logs.Receivers, "otlp") || len(logs.Exporters) == 0 {
		t.Fatalf("service.pipelines.logs = %+v, want the otlp receiver and an exporter", logs)
	}
	for name, p := range top.Service.Pipelines {
		for _, ref := range []struct {
			kind    string
			names   []string
			defined map[string]any
		}{{"receivers", p.Receivers, top.Receivers}, {"processors", p.Processors, top.Processors}, {"exporters", p.Exporters, top.Exporters}} {
			for _, n := range ref.names {
				if _, ok := ref.defined[n]; !ok {
					t.Errorf("pipeline %s names %s %q, which the file does not define", name, ref.kind, n)
				}
			}
		}
	}

	sub, err := conf.Sub("receivers::otlp")
	if err != nil {
		t.Fatal(err)
	}
	cfg := otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatalf("receivers.otlp does not decode into the otlp receiver's config: %v", err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("receivers.otlp: %v", err)
	}
	g, h := cfg.Protocols.GRPC.Get(), cfg.Protocols.HTTP.Get()
	if g == nil || h == nil {
		t.Fatalf("receivers.otlp enables grpc %v, http %v; want both", g != nil, h != nil)
	}
	for _, proto := range []string{sinks.OTLPGRPC, sinks.OTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			// The file's receiver section, one protocol on a free port.
			one := otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config)
			if err := sub.Unmarshal(one); err != nil {
				t.Fatal(err)
			}
			port := freeAddr(t)
			endpoint := port
			if proto == sinks.OTLPGRPC {
				one.Protocols.GRPC.Get().NetAddr.Endpoint = port
				one.Protocols.HTTP = otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config).Protocols.HTTP // not enabled
			} else {
				one.Protocols.HTTP.Get().ServerConfig.NetAddr.Endpoint = port
				one.Protocols.GRPC = otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config).Protocols.GRPC
				endpoint = "http://" + port
			}
			rec := &otlptest.Recorder{}
			r, err := otlptest.StartConfig(one, rec.Consume)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop()

			sc := sinks.OTLPSinkConfig{Protocol: proto, Endpoint: endpoint}
			sc.SetDefaults()
			if err := sc.Validate(); err != nil {
				t.Fatal(err)
			}
			c := sinks.NewMetrics(prometheus.NewRegistry()).Counters("otlp")
			s, err := sinks.NewOTLP(sc.OTLPConfig("otlp", "h"), event.NewEncoder("h"), c, nil, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			r1 := event.Record{Time: time.Now().UnixNano(), HasProc: true, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 1, Len: 40},
				Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: 7, TGID: 7}}
			if err := s.Write(&r1); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if rec.Count() != 1 {
				t.Errorf("the receiver took %d records, want 1", rec.Count())
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
