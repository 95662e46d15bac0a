package ratelimit_test

import (
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/ratelimit"
)

// FuzzLimiter drives a limiter with arbitrary records, times, ticks and
// flushes: delivered + suppressed = offered, every suppressed record is
// reported once (or still pending), no key is reported by Tick twice
// within report_every, and the keys and remembered execs stay bounded.
func FuzzLimiter(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 0x41, 0xf0}, uint8(3), uint8(2))
	f.Add([]byte{0x10, 0x10, 0x10, 0x10, 0x11, 0x11, 0xe0, 0xff}, uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, ops []byte, maxKeys, burst uint8) {
		const every = 5 * time.Second
		c := ratelimit.Config{Per: []string{"process.exe", "process.uid"}, EventsPerSecond: 2, Burst: int(burst%8) + 1,
			MaxKeys: int(maxKeys%6) + 1, ReportEvery: every}
		c.SetMaxPairs(4)
		l := limiter(t, c)
		now := 1000 * sec
		var reported uint64
		last := map[string]int64{}
		exes := []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h"}
		for _, op := range ops {
			now += int64(op&0x0f) * sec / 8
			switch op >> 4 {
			case 0xe:
				for _, s := range l.Tick(now) {
					k := ratelimit.KeyString(s)
					if at, ok := last[k]; ok && now-at < int64(every) {
						t.Fatalf("key %s reported at %d and again at %d, within %v", k, at, now, every)
					}
					last[k] = now
					if s.Count == 0 {
						t.Fatalf("empty report %+v", s)
					}
					reported += s.Count
				}
			case 0xf:
				for _, s := range l.Flush() {
					reported += s.Count
				}
				clear(last) // a flush (reload, stop) may report again at once
			default:
				ev := []string{"exec", "exit", "fork", "exit"}[op>>4&3]
				pid := int64(op >> 6)
				l.Allow(rec(ev, exes[op&7], pid, int64(op>>5&1)), now)
			}
			st := l.Stats()
			if st.Delivered+st.Suppressed != st.Offered {
				t.Fatalf("delivered %d + suppressed %d != offered %d", st.Delivered, st.Suppressed, st.Offered)
			}
			if reported+st.Pending != st.Suppressed {
				t.Fatalf("reported %d + pending %d != suppressed %d", reported, st.Pending, st.Suppressed)
			}
			if st.ActiveKeys > c.MaxKeys+1 {
				t.Fatalf("%d active keys, max_keys %d", st.ActiveKeys, c.MaxKeys)
			}
			if l.Pairs() > 4 {
				t.Fatalf("remembers %d execs, bound 4", l.Pairs())
			}
		}
	})
}
