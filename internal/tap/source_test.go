package tap

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cnbridged/cnbridged/internal/natstest"
)

// runNATS starts an embedded JetStream server on loopback.
func runNATS(t *testing.T) *server.Server {
	t.Helper()
	return natstest.Run(t, natstest.JetStream(t.TempDir()))
}

func line(host, ev string, pid int) []byte {
	return fmt.Appendf(nil, `{"time":"2026-11-30T10:00:00Z","host":%q,"idx":1,"val":1,"proc":{"event":%q,"pid":%d,"tgid":%d}}`, host, ev, pid, pid)
}

// collect reads from src until want lines arrived (then it stops src).
func collect(t *testing.T, src *NATSSource, want int, ready func()) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	errc := make(chan error, 1)
	go func() {
		errc <- src.Read(ctx, func(b []byte) error {
			got = append(got, string(b))
			if len(got) == want {
				cancel()
			}
			return nil
		})
	}()
	if ready != nil {
		ready()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("got %d lines before the deadline, want %d", len(got), want)
	}
	return got
}

func TestNATSSourceCore(t *testing.T) {
	s := runNATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	base := s.NumSubscriptions()
	src := &NATSSource{URL: s.ClientURL(), Subject: "cn.*.proc.exec"}
	got := collect(t, src, 2, func() {
		// Publish until the subscription is in place, then the real lines.
		deadline := time.Now().Add(10 * time.Second)
		for s.NumSubscriptions() == base && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		nc.Publish("cn.h1.proc.fork", line("h1", "fork", 1))
		nc.Publish("cn.h1.proc.exec", line("h1", "exec", 2))
		nc.Publish("cn.h2.proc.exec", line("h2", "exec", 3))
		nc.Flush()
	})
	want := []string{string(line("h1", "exec", 2)), string(line("h2", "exec", 3))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestNATSSourceJetStream(t *testing.T) {
	s := runNATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CN", Subjects: []string{"cn.>"}}); err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := 1; i <= 4; i++ {
		ev := "exec"
		if i == 3 {
			ev = "exit"
		}
		b := line("h1", ev, i)
		if _, err := js.Publish(ctx, "cn.h1.proc."+ev, b); err != nil {
			t.Fatal(err)
		}
		all = append(all, string(b))
	}
	tests := []struct {
		name string
		src  NATSSource
		want []string
	}{
		{"since a time", NATSSource{Stream: "CN", Since: 10 * time.Minute}, all},
		{"since a sequence", NATSSource{Stream: "CN", SinceSeq: 3}, all[2:]},
		{"since a time, filtered server-side", NATSSource{Stream: "CN", Subject: "cn.*.proc.exit", Since: time.Hour}, all[2:3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.URL = s.ClientURL()
			got := collect(t, &tt.src, len(tt.want), nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no stream", func(t *testing.T) {
		src := &NATSSource{URL: s.ClientURL(), Stream: "NOPE", Since: time.Minute}
		err := src.Read(ctx, func([]byte) error { return nil })
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("Read = %v, want ErrStreamNotFound", err)
		}
	})
}
