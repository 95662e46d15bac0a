package cntest

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeT records a fatal failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

func run(f func(t testing.TB)) (failed string) {
	ft := &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != ft {
			panic(r)
		}
		failed = ft.failed
	}()
	f(ft)
	return ""
}

func TestWaitFor(t *testing.T) {
	n := 0
	if got := run(func(t testing.TB) { WaitFor(t, time.Second, "three polls", func() bool { n++; return n == 3 }) }); got != "" || n != 3 {
		t.Errorf("a condition that comes true: failed %q after %d polls, want no failure after 3", got, n)
	}
	got := run(func(t testing.TB) { WaitFor(t, 30*time.Millisecond, "never", func() bool { return false }) })
	if !strings.Contains(got, "waiting for never") {
		t.Errorf("a condition that never holds: failure %q, want one naming it", got)
	}
	got = run(func(t testing.TB) {
		WaitForNoError(t, 30*time.Millisecond, "never", func() error { return errors.New("still down") })
	})
	if !strings.Contains(got, "waiting for never (last error: still down)") {
		t.Errorf("WaitForNoError: failure %q, want one with the last error", got)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			io.WriteString(&b, "x")
		}
	})
	for range 100 {
		_ = b.String()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 100) {
		t.Errorf("String() = %q, want 100 x", got)
	}
}
