package daemon

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stopSummary is what the last log line of a stop reports, read from the
// daemon's own counters once every stage has stopped.
type stopSummary struct {
	Datagrams uint64 // read from the socket
	Drained   uint64 // of those, read after the stop was requested
	Received  uint64 // messages decoded from trusted senders
	Rejected  map[string]uint64
	Lost      uint64 // seq gaps seen while listening
	// LostNotListening is the restart gap: seqs numbered while no
	// cnbridged read them.
	LostNotListening uint64
	SocketDrops      uint64 // dropped by the kernel at the socket
	Sinks            []sinkSummary
	// SocketLeft is set when shutdown_timeout ended the socket drain
	// before the socket was empty: those messages are not counted.
	SocketLeft bool
	// SinksTimedOut is set when shutdown_timeout ended the sink drain:
	// what was still queued is counted dropped, reason shutdown.
	SinksTimedOut bool
}

type sinkSummary struct {
	Name         string
	Sent, Failed uint64
	Dropped      map[string]uint64 // by reason
}

func (s sinkSummary) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddUint64("sent", s.Sent)
	e.AddUint64("failed", s.Failed)
	var total uint64
	for _, n := range s.Dropped {
		total += n
	}
	e.AddUint64("dropped", total)
	return e.AddObject("dropped_by_reason", counts(s.Dropped))
}

type counts map[string]uint64

func (c counts) MarshalLogObject(e zapcore.ObjectEncoder) error {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.AddUint64(k, c[k])
	}
	return nil
}

type sinkSummaries []sinkSummary

func (ss sinkSummaries) MarshalLogObject(e zapcore.ObjectEncoder) error {
	for _, s := range ss {
		if err := e.AddObject(s.Name, s); err != nil {
			return err
		}
	}
	return nil
}

// Fields are the summary as log fields.
func (s *stopSummary) Fields() []zap.Field {
	return []zap.Field{
		zap.Uint64("datagrams", s.Datagrams),
		zap.Uint64("drained_at_stop", s.Drained),
		zap.Uint64("received", s.Received),
		zap.Object("rejected", counts(s.Rejected)),
		zap.Uint64("lost", s.Lost),
		zap.Uint64("lost_not_listening", s.LostNotListening),
		zap.Uint64("socket_drops", s.SocketDrops),
		zap.Object("sinks", sinkSummaries(s.Sinks)),
		zap.Bool("socket_left_unread", s.SocketLeft),
		zap.Bool("sinks_drain_timed_out", s.SinksTimedOut),
	}
}

// gatherSummary fills the counter fields of s from reg.
func gatherSummary(reg prometheus.Gatherer, s *stopSummary) error {
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	s.Rejected = map[string]uint64{}
	bySink := map[string]*sinkSummary{}
	sink := func(name string) *sinkSummary {
		if ss, ok := bySink[name]; ok {
			return ss
		}
		ss := &sinkSummary{Name: name, Dropped: map[string]uint64{}}
		bySink[name] = ss
		return ss
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := uint64(m.GetCounter().GetValue())
			switch f.GetName() {
			case "cnbridged_socket_datagrams_total":
				s.Datagrams = v
			case "cnbridged_messages_received_total":
				s.Received += v
			case "cnbridged_messages_lost_total":
				if label(m, "when") == "not_listening" {
					s.LostNotListening += v
				} else {
					s.Lost += v
				}
			case "cnbridged_messages_rejected_total":
				s.Rejected[label(m, "reason")] += v
			case "cnbridged_sink_messages_total":
				ss := sink(label(m, "sink"))
				switch label(m, "result") {
				case "sent":
					ss.Sent = v
				case "failed":
					ss.Failed = v
				}
			case "cnbridged_sink_dropped_total":
				sink(label(m, "sink")).Dropped[label(m, "reason")] += v
			}
		}
	}
	names := make([]string, 0, len(bySink))
	for n := range bySink {
		names = append(names, n)
	}
	slices.Sort(names)
	s.Sinks = s.Sinks[:0]
	for _, n := range names {
		s.Sinks = append(s.Sinks, *bySink[n])
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
