package enrich

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/procinfo"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// Capturer reads /proc for each exec event on the kernel reader's
// goroutine, as the reader handles the event, before the batch is handed
// on: a short-lived program (/bin/true lives a few hundred microseconds
// after its exec event) has usually ended by the time the enricher's
// goroutine would get to it. It reads in the order the process loses
// things as it ends (procinfo.Reader.Capture: cmdline and exe first).
//
// The reader must not fall behind the socket, so the reads of one batch
// have a time budget, counted from the batch's receipt: once it has run
// out, what is left of the batch (the rest of an exec, the later execs) is
// not read here; the enricher reads it and marks it late (Observed.Late).
// A budget of 0 reads nothing here.
//
// It touches no table: it only reads /proc and hands what it read on, in
// the record (event.Record.Capture). One Capturer serves one reader
// goroutine; the Enricher makes it (Enricher.Capturer).
type Capturer struct {
	reader   procinfo.Reader
	budget   time.Duration
	deadline time.Time
	// more is the deadline check handed to Capture, made once.
	more  func() bool
	clock monoClock
	// names holds the names of each set of fields, for Observed.Late
	// (read only once made: records share them).
	names [procinfo.ExecFields + 1][]string
	// readAt is, by pid % execSlots, when the last capture ended
	// (CLOCK_MONOTONIC ns); overtaken counts the exec events received
	// stamped before that: their new image may show in that capture (see
	// event.Capture.Overtaken). readAt is the reader's alone.
	readAt    [execSlots]int64
	overtaken [execSlots]atomic.Uint32
	// seen are the enricher's exec counters (Enricher.execSeen): Exec
	// counts every exec event in them.
	seen *[execSlots]atomic.Uint32

	results                                *prometheus.CounterVec
	received, partial, lateAll, gone, errs prometheus.Counter
	seconds                                prometheus.Counter
	delay                                  prometheus.Histogram
}

func newCapturer(o Options, reg prometheus.Registerer, seen *[execSlots]atomic.Uint32) *Capturer {
	c := &Capturer{
		reader: procinfo.Reader{Root: o.ProcRoot, MaxCmdline: o.MaxCmdline},
		budget: o.CaptureBudget,
		clock:  newMonoClock(),
		seen:   seen,
	}
	c.more = func() bool { return time.Now().Before(c.deadline) }
	c.names = fieldNameSets()
	c.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cnbridged_enrich_capture_total",
		Help: "Exec events by how much of /proc the reader read as it received them (process_table.capture_budget): received (all), partial (the budget ran out during its reads), late (none: the budget had run out, or is 0), gone (the process had gone before the reads ended), error.",
	}, []string{"result"})
	c.received = c.results.WithLabelValues("received")
	c.partial = c.results.WithLabelValues("partial")
	c.lateAll = c.results.WithLabelValues("late")
	c.gone = c.results.WithLabelValues("gone")
	c.errs = c.results.WithLabelValues("error")
	c.seconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cnbridged_enrich_capture_seconds_total",
		Help: "Time the kernel reader spent reading /proc for exec events as it received them.",
	})
	c.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cnbridged_enrich_capture_delay_seconds",
		Help:    "From an exec event's kernel timestamp to the reader's first /proc read for it: a short-lived program must still run then to be named.",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 15), // 10 µs … 164 ms
	})
	reg.MustRegister(c.results, c.seconds, c.delay)
	return c
}

// Begin starts the reads of a batch received at now. Called on the reader
// goroutine, before the batch's first Exec.
func (c *Capturer) Begin(now time.Time) { c.deadline = now.Add(c.budget) }

// Exec counts the exec event of pid, stamped ts by the kernel, for the
// enricher (every one the reader hands over, see Enricher.execSeen) and
// reads /proc for it within what is left of the batch's budget. It returns
// nil when it read nothing. Called on the reader goroutine.
func (c *Capturer) Exec(pid uint32, ts uint64) *event.Capture {
	slot := pid % execSlots
	c.seen[slot].Add(1)
	if int64(ts) < c.readAt[slot] {
		c.overtaken[slot].Add(1)
	}
	if c.budget <= 0 {
		c.lateAll.Inc()
		return nil
	}
	start := time.Now()
	if !start.Before(c.deadline) {
		c.lateAll.Inc()
		return nil
	}
	if ts != 0 {
		c.delay.Observe(float64(c.clock.ns(start)-int64(ts)) / 1e9)
	}
	in, got, err := c.reader.Capture(pid, c.more)
	end := time.Now()
	c.seconds.Add(end.Sub(start).Seconds())
	var late, missing procinfo.Fields
	switch {
	case err != nil:
		c.errs.Inc()
		late = procinfo.ExecFields &^ got
	case in.Gone:
		c.gone.Inc()
		missing = procinfo.ExecFields &^ got // no later read can see them
	case got == procinfo.ExecFields:
		c.received.Inc()
	case got != 0:
		c.partial.Inc()
		late = procinfo.ExecFields &^ got
	default:
		c.lateAll.Inc()
	}
	if got == 0 && !in.Gone {
		return nil
	}
	o := proctable.Observed{
		PID: pid, Gone: in.Gone && got == 0,
		Exe: in.Exe, Cmdline: in.Cmdline, CmdlineTruncated: in.CmdlineTruncated, Cwd: in.Cwd, Comm: in.Comm,
		Cgroup: in.Cgroup, ContainerID: in.ContainerID, PodUID: in.PodUID,
		Missing: in.Unreadable,
		Late:    c.names[late],
	}
	if missing != 0 {
		o.Missing = append(o.Missing, c.names[missing]...)
	}
	at := c.clock.ns(end)
	c.readAt[slot] = at
	return &event.Capture{Observed: o, At: at, Overtaken: c.overtaken[slot].Load()}
}

// overtakenOf returns the count of exec events that may show in a capture
// of pid's slot (see event.Capture.Overtaken). Safe from any goroutine.
func (c *Capturer) overtakenOf(pid uint32) uint32 { return c.overtaken[pid%execSlots].Load() }

// fieldNameSets returns the names of every set of exec fields, indexed
// by the set.
func fieldNameSets() (names [procinfo.ExecFields + 1][]string) {
	for f := range names {
		names[f] = procinfo.Fields(f).Names()
	}
	return names
}

// Close releases the reader's descriptor of /proc. Call it after the last
// Exec.
func (c *Capturer) Close() { c.reader.Close() }

// monoClock turns Go's monotonic clock readings into CLOCK_MONOTONIC
// nanoseconds, the clock of proc events' timestamps, with no system call
// per reading: Go reads that same clock (through the vDSO).
type monoClock struct {
	base   time.Time
	baseNs int64
}

func newMonoClock() monoClock {
	before := monotonicNs()
	base := time.Now()
	after := monotonicNs()
	return monoClock{base: base, baseNs: before + (after-before)/2}
}

// ns returns t in CLOCK_MONOTONIC nanoseconds. t must carry a monotonic
// reading (time.Now's do).
func (c monoClock) ns(t time.Time) int64 { return c.baseNs + int64(t.Sub(c.base)) }
