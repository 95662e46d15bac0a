package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram: 16 linear sub-buckets per power
// of two of nanoseconds (about 6% resolution), no allocation per sample.
type hist struct {
	b     [64 * 16]uint64
	n     uint64
	under uint64 // negative samples (clock skew between processes)
}

func (h *hist) add(ns int64) {
	if ns < 0 {
		h.under++
		ns = 0
	}
	h.b[bucket(uint64(ns))]++
	h.n++
}

func bucket(v uint64) int {
	if v < 16 {
		return int(v)
	}
	e := bits.Len64(v) - 5 // shift so that the top 5 bits remain
	return (e+1)*16 + int(v>>uint(e))&15
}

// upper returns a bucket's upper bound in ns.
func upper(i int) float64 {
	if i < 16 {
		return float64(i)
	}
	e := i/16 - 1
	return float64((uint64(16+i%16)+1)<<uint(e)) - 1
}

// quantile returns the q-quantile (bucket upper bound).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.n)))
	var c uint64
	for i, v := range h.b {
		c += v
		if c >= want && v > 0 {
			return time.Duration(upper(i))
		}
	}
	return 0
}

// latency is what a trial reports.
type latency struct {
	Samples uint64  `json:"samples"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	Maxus   float64 `json:"max_us,omitempty"`
}

func (h *hist) summary() *latency {
	if h.n == 0 {
		return nil
	}
	return &latency{
		Samples: h.n,
		P50us:   float64(h.quantile(0.50)) / 1e3,
		P99us:   float64(h.quantile(0.99)) / 1e3,
		Maxus:   float64(h.quantile(1)) / 1e3,
	}
}
