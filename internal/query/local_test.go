package query

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/tap"
)

// TestAskLocal: a question over the tap socket gets the same answer as
// over NATS; a bad one an error answer.
func TestAskLocal(t *testing.T) {
	t.Parallel()
	r := newTestResponder(t, testTable(t), "")
	path := filepath.Join(t.TempDir(), "tap.sock")
	s, err := tap.Listen(tap.ServerConfig{Path: path, Mode: 0o600, ClientBuffer: 16, Queries: LocalHandler(r)}, "h1", event.NewEncoder("h1"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	a, err := AskLocal(actx, path, OpLineage, Request{EntityID: "b00t:20:20"})
	if err != nil {
		t.Fatal(err)
	}
	if got := depths(rows(t, a)); got != "1@0 10@1 20@2 30@3 31@3" {
		t.Errorf("lineage over the tap socket: %q", got)
	}
	if a, err = AskLocal(actx, path, OpPS, Request{Where: "no such"}); err != nil || a.Code != CodeBadRequest {
		t.Errorf("bad where over the tap socket: %+v (%v), want a 400 answer", a, err)
	}
}
