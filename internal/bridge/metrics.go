package bridge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/seqtrack"
)

// maxIDSeries bounds the per-id metric series; ids beyond it share the
// series idx="other", val="other".
const maxIDSeries = 1024

type idCounters struct {
	received, resets, duplicates prometheus.Counter
	// lost counts seq gaps seen while listening (socket overruns, a
	// sender's own loss); lostNotListening the seqs the kernel numbered
	// while no cnbridged read them (the restart gap).
	lost, lostNotListening prometheus.Counter
}

// Values of cnbridged_messages_lost_total's "when" label.
const (
	// LostListening is loss seen live: seq gaps in what this daemon
	// read (socket overruns, a sender's own loss).
	LostListening = "listening"
	// LostNotListening is the restart gap: seqs the kernel numbered
	// between the previous daemon's last read and this one's first, per
	// stream, found from the restart trace (state_dir).
	LostNotListening = "not_listening"
)

// restartGaps tells the restart gap from loss while listening. Streams
// resumed from the restart trace are awaiting their first message; the
// gap that message shows is the restart gap, counted not_listening as the
// ledger declares it lost (with a reorder window, later; the restart
// holes are the oldest, so they are declared first). Used by the reader
// goroutine only.
type restartGaps struct {
	awaiting map[seqtrack.Key]struct{}
	pending  map[seqtrack.Key]uint32
}

// resumed marks k as resumed from the restart trace.
func (g *restartGaps) resumed(k seqtrack.Key) {
	if g.awaiting == nil {
		g.awaiting, g.pending = map[seqtrack.Key]struct{}{}, map[seqtrack.Key]uint32{}
	}
	g.awaiting[k] = struct{}{}
}

// observed notes the first message of a resumed stream: the size of the
// gap it shows, if any, is the restart gap.
func (g *restartGaps) observed(k seqtrack.Key, res seqtrack.Result) {
	if len(g.awaiting) == 0 {
		return
	}
	if _, ok := g.awaiting[k]; !ok {
		return
	}
	delete(g.awaiting, k)
	if res.Kind == seqtrack.Gap {
		g.pending[k] = res.ToSeq - res.FromSeq + 1
	}
}

// countLost counts n seqs of stream k declared lost: first against its
// restart gap (not_listening), the rest as loss while listening.
func (g *restartGaps) countLost(c *idCounters, k seqtrack.Key, n uint32) {
	if p, ok := g.pending[k]; ok {
		nl := min(n, p)
		if p -= nl; p == 0 {
			delete(g.pending, k)
		} else {
			g.pending[k] = p
		}
		c.lostNotListening.Add(float64(nl))
		n -= nl
	}
	if n > 0 {
		c.lost.Add(float64(n))
	}
}

type metrics struct {
	restart                            restartGaps
	received, lost, resets, duplicates *prometheus.CounterVec
	rejected                           *prometheus.CounterVec
	rejMalformed, rejUntrusted, rejUnr prometheus.Counter
	decodeErrors                       *prometheus.CounterVec
	lossMarkers                        prometheus.Counter
	procEvents                         *prometheus.CounterVec
	procByWhat                         map[cnmsg.What]prometheus.Counter
	procOther                          prometheus.Counter
	userFiltered                       prometheus.Counter
	threadFiltered                     prometheus.Counter
	routeFiltered                      prometheus.Counter
}

// newMetrics makes the bridge's metrics and registers them.
func newMetrics(reg prometheus.Registerer) *metrics {
	idLabels := []string{"idx", "val"}
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_messages_received_total",
			Help: "Connector messages received from trusted senders and decoded, by connector id.",
		}, idLabels),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_messages_lost_total",
			Help: "Messages missing from a sequence stream (seq gaps): lost before cnbridged read them. when=\"listening\": gaps in what this daemon read (socket overruns, a sender's loss); when=\"not_listening\": seqs numbered while no cnbridged read them (the restart gap, from state_dir's trace).",
		}, []string{"idx", "val", "when"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_seq_resets_total",
			Help: "Sequence streams that jumped back: a sender restart, not loss.",
		}, idLabels),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_messages_duplicate_total",
			Help: "Messages whose seq was already seen in their stream.",
		}, idLabels),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_messages_rejected_total",
			Help: "Messages not forwarded: malformed, untrusted_sender (not the kernel and not allowed by listener.userspace_senders) or unrouted.",
		}, []string{"reason"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_decode_errors_total",
			Help: "Malformed datagrams by decode error.",
		}, []string{"reason"}),
		lossMarkers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_loss_markers_total",
			Help: "In-band loss markers emitted (one per seq gap).",
		}),
		procEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cnbridged_proc_events_received_total",
			Help: "Process connector events received from the kernel, by event type, before routing.",
		}, []string{"event"}),
		userFiltered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_proc_events_filtered_total",
			Help: "Process events dropped by the userspace filter (listener.proc_events on kernels without per-socket filtering).",
		}),
		threadFiltered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_thread_events_filtered_total",
			Help: "Thread events (thread forks and thread exits) withheld from at least one sink by a route with threads: false.",
		}),
		routeFiltered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_route_events_filtered_total",
			Help: "Process events that a route's id matched but its events: list left out, and no other route took: filtered by the config, not rejected.",
		}),
		procByWhat: map[cnmsg.What]prometheus.Counter{},
	}
	for _, w := range []cnmsg.What{cnmsg.ProcNone, cnmsg.ProcFork, cnmsg.ProcExec, cnmsg.ProcUID, cnmsg.ProcGID,
		cnmsg.ProcSID, cnmsg.ProcPtrace, cnmsg.ProcComm, cnmsg.ProcCoredump, cnmsg.ProcExit} {
		m.procByWhat[w] = m.procEvents.WithLabelValues(w.String())
	}
	m.procOther = m.procEvents.WithLabelValues("unknown")
	m.rejMalformed = m.rejected.WithLabelValues(ReasonMalformed)
	m.rejUntrusted = m.rejected.WithLabelValues(ReasonUntrusted)
	m.rejUnr = m.rejected.WithLabelValues(ReasonUnrouted)
	// Every documented reason is exported from the start, at zero.
	for _, r := range DecodeReasons {
		m.decodeErrors.WithLabelValues(r)
	}
	reg.MustRegister(m.received, m.lost, m.resets, m.duplicates, m.rejected, m.decodeErrors, m.lossMarkers,
		m.procEvents, m.userFiltered, m.threadFiltered, m.routeFiltered)
	return m
}

func (b *Bridge) countersFor(idx, val string) *idCounters {
	return &idCounters{
		received:         b.m.received.WithLabelValues(idx, val),
		lost:             b.m.lost.WithLabelValues(idx, val, LostListening),
		lostNotListening: b.m.lost.WithLabelValues(idx, val, LostNotListening),
		resets:           b.m.resets.WithLabelValues(idx, val),
		duplicates:       b.m.duplicates.WithLabelValues(idx, val),
	}
}

func (b *Bridge) counters(id cnmsg.ID) *idCounters {
	if b.lastC != nil && b.lastID == id {
		return b.lastC
	}
	c := b.lookupCounters(id)
	b.lastID, b.lastC = id, c
	return c
}

func (b *Bridge) lookupCounters(id cnmsg.ID) *idCounters {
	if c, ok := b.ids[id]; ok {
		return c
	}
	if len(b.ids) >= maxIDSeries {
		return b.other
	}
	c := b.countersFor(strconv.FormatUint(uint64(id.Idx), 10), strconv.FormatUint(uint64(id.Val), 10))
	b.ids[id] = c
	return c
}

// DecodeReasons are the reason labels of cnbridged_decode_errors_total:
// cnmsg.Reason's labels and "truncated" (a datagram cut short by the
// receive buffer).
var DecodeReasons = []string{"short_nlmsghdr", "bad_nlmsg_len", "short_cn_msg", "cn_len_overflow",
	"short_proc_event", "truncated", "not_connector"}

func (b *Bridge) malformed(reason string, now time.Time) {
	b.m.rejMalformed.Inc()
	b.m.decodeErrors.WithLabelValues(reason).Inc()
	if b.shouldWarn(reason, now) {
		b.log.Warn("dropped malformed datagrams (logged at most once a minute per reason)", zap.String("reason", reason))
	}
}

// shouldWarn reports whether a warning of this kind may be logged now: at
// most once a minute per key. Callers build the log fields only then, so a
// flood of rejected messages costs no allocations.
func (b *Bridge) shouldWarn(key string, now time.Time) bool { return b.warn.Allow(key, now) }
