package top

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/cnbridged/cnbridged/internal/natstest"
)

// TestFleetFromNATS: events and loss markers published by two hosts are
// counted by host and type.
func TestFleetFromNATS(t *testing.T) {
	s := natstest.Run(t)
	f, err := NewFleet(s.ClientURL(), "cn.>")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := func(subj, line string) {
		if err := nc.Publish(subj, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	pub("cn.web1.proc.exec.-", `{"host":"web1","proc":{"event":"exec"}}`)
	pub("cn.web1.proc.exec.-", `{"host":"web1","proc":{"event":"exec"}}`)
	pub("cn.web2.proc.fork.-", `{"host":"web2","proc":{"event":"fork"}}`)
	pub("cn.web2.proc.loss.-", `{"host":"web2","type":"loss","lost":3}`)
	pub("other.subject", `{"host":"web3","proc":{"event":"exec"}}`)
	nc.Flush()
	want := Sample{
		Events: map[Key]float64{{"web1", "exec"}: 2, {"web2", "fork"}: 1},
		Lost:   map[string]float64{"web1": 0, "web2": 3},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := f.Sample()
		got.Time = time.Time{}
		diff := cmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sample (-want +got):\n%s", diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
