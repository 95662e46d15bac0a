// Package cntest holds the helpers cnbridged's tests share: skipping
// without root, waiting on a condition with a deadline (never a fixed
// sleep), and a buffer a process's output can be written into while the
// test reads it. For tests only.
package cntest

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// NeedRoot skips the test unless it runs as root, saying why it needs
// root ("needs root: " + why).
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// pollEvery is how often WaitFor and WaitForNoError try their condition.
const pollEvery = 10 * time.Millisecond

// WaitFor polls cond until it holds, failing the test (t.Fatalf) when
// timeout passes first; what names the condition in that failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// WaitForNoError polls cond until it returns nil, failing the test
// (t.Fatalf) with the last error when timeout passes first.
func WaitForNoError(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, err)
		}
		time.Sleep(pollEvery)
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent
// readers: a child process's stdout or stderr, read while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
