package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cnbridged/cnbridged/internal/natstest"
)

// rootReason is why the tests that run the daemon need root
// (cntest.NeedRoot).
const rootReason = "runs the daemon, which subscribes to the process connector"

// startDaemon runs the built daemon with config (a YAML document; every
// "{metrics}" in it is replaced by a free loopback address), waits until
// /readyz answers 200, and returns the metrics base URL. The daemon is
// stopped with SIGTERM when the test ends.
func startDaemon(t *testing.T, config string) string {
	t.Helper()
	bin := buildStatic(t)
	addr := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cnbridged.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(config, "{metrics}", addr)), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	logPath := filepath.Join(dir, "daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "run", "--config", cfg, "--no-watch", "--set", "state_dir="+filepath.Join(dir, "state"))
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("daemon did not stop within 30s of SIGTERM")
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("daemon exited before it was ready: %v\n%s", err, log)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("daemon not ready within 30s (last: %v)\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the daemon's /metrics.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}
