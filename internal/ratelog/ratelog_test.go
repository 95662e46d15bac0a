package ratelog

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(time.Minute, 2)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", time.Second, false},
		{"b", time.Second, true},
		{"a", 59 * time.Second, false},
		{"a", time.Minute, true},
		{"c", time.Minute, true}, // a third key: the others are forgotten
		{"b", time.Minute, true},
	}
	for i, s := range steps {
		if got := l.Allow(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: Allow(%q, +%s) got %v, want %v", i, s.key, s.at, got, s.want)
		}
	}
}

func TestAllowAllocatesNothing(t *testing.T) {
	l := New(time.Minute, 8)
	now := time.Now()
	l.Allow("flood", now)
	if a := testing.AllocsPerRun(100, func() { l.Allow("flood", now) }); a != 0 {
		t.Errorf("allocs per refused Allow = %v, want 0", a)
	}
}
