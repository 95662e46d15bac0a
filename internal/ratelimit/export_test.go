package ratelimit

// SetMaxPairs bounds the remembered execs (tests).
func (c *Config) SetMaxPairs(n int) { c.pairs = n }

// Pairs is how many execs l remembers.
func (l *Limiter) Pairs() int { return l.pairs.len() }
