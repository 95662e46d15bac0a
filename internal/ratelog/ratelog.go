// Package ratelog limits repeated warnings: a message of one kind is logged
// at most once per interval, so a flood of the same failure costs a map
// lookup, not a log line (or the fields built for it: ask Allow first).
package ratelog

import (
	"sync"
	"time"
)

// Limiter remembers when each kind of warning was last allowed. It is safe
// for concurrent use.
type Limiter struct {
	every   time.Duration
	maxKeys int

	mu   sync.Mutex
	last map[string]time.Time
}

// New returns a limiter allowing each key once per every. It remembers at
// most maxKeys keys (keys built from error text can be many): past that it
// forgets them all, so a key may then be logged again early.
func New(every time.Duration, maxKeys int) *Limiter {
	if maxKeys < 1 {
		maxKeys = 1
	}
	return &Limiter{every: every, maxKeys: maxKeys, last: make(map[string]time.Time)}
}

// Allow reports whether a warning of kind key may be logged at now, and if
// so counts it as logged.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if _, ok := l.last[key]; !ok && len(l.last) >= l.maxKeys {
		clear(l.last)
	}
	l.last[key] = now
	return true
}
