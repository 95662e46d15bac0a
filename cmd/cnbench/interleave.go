package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// side is one contender of an interleaved ladder.
type side struct {
	name  string
	trial func(rate float64) (trial, error)
	rss   *float64 // peak RSS over its trials, when it measures one (MiB)
}

// interleave runs every side at every rate, in turn at each rate (bare
// reader, file sink, core NATS, …), so that a ratio between two rows
// compares trials a few seconds apart on this shared machine instead of
// ladders minutes apart. A side whose trial fails is skipped from then on.
func (h *harness) interleave(sides []side) []*row {
	rows := make([]*row, len(sides))
	for i, s := range sides {
		rows[i] = &row{Name: s.name}
	}
	for _, rate := range h.rates {
		for i, s := range sides {
			r := rows[i]
			if r.Skipped != "" {
				continue
			}
			t, err := s.trial(rate)
			if err != nil {
				r.Skipped = err.Error()
				h.logf("%s: %v", r.Name, err)
				continue
			}
			h.logf("%-24s target %7.0f/s sent %8d at %7.0f/s delivered %8d lost %7d cpu %.2fs",
				r.Name, rate, t.Sent, t.SendRate, t.Delivered, t.Lost, t.CPUSecs)
			r.Trials = append(r.Trials, t)
		}
	}
	for i, r := range rows {
		r.summarise()
		if sides[i].rss != nil {
			r.PeakRSSMiB = *sides[i].rss
		}
	}
	return rows
}

// daemonSide is a side whose every trial runs a daemon of its own with
// cfg (started before, stopped after): no idle daemon listens to the
// benchmark group while another side's trial runs. delivered reads what
// the sink published so far (cumulative across daemons).
func (h *harness) daemonSide(name, key, cfg string, delivered func() int64) side {
	var rss float64
	return side{name: name, rss: &rss, trial: func(rate float64) (trial, error) {
		d, err := h.startDaemon(key, cfg, nil)
		if err != nil {
			return trial{}, err
		}
		t, err := h.daemonTrial(d, rate, delivered)
		rss = max(rss, float64(statusKiB(d.pid, "VmHWM"))/1024)
		d.stop()
		return t, err
	}}
}

// fileSide is the file sink, one daemon per trial.
func (h *harness) fileSide() (side, string) {
	path := filepath.Join(h.tmp, "out.jsonl")
	var off, lines int64
	delivered := func() int64 {
		n, size := countLines(path, off)
		lines += n
		off = size
		return lines
	}
	return h.daemonSide("file sink", "file", synthConfig(fmt.Sprintf("{type: file, path: %q}", path)), delivered), path
}

// fileLatency measures the file sink's latency in one more trial at the
// latency rate, tailing the file.
func (h *harness) fileLatency(r *row, path string) {
	d, err := h.startDaemon("file", synthConfig(fmt.Sprintf("{type: file, path: %q}", path)), nil)
	if err != nil {
		return
	}
	defer d.stop()
	var off, lines int64
	delivered := func() int64 {
		n, size := countLines(path, off)
		lines += n
		off = size
		return lines
	}
	st := &lineStats{}
	st.timing.Store(true)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- st.tail(path, stop) }()
	_, err = h.daemonTrial(d, h.latencyRate, delivered)
	close(stop)
	<-done
	if err == nil {
		hh := st.takeHist()
		r.Latency = hh.summary()
	}
	r.LatencyNote = "send → line read back from the file by the harness (100 µs polling)"
	os.Remove(path)
}

// coreSide is the core NATS sink, one daemon per trial, counted by a
// subscriber in the harness.
func (h *harness) coreSide(rig *natsRig, st *lineStats) side {
	cfg := synthConfig(fmt.Sprintf(`{type: nats, url: %q, subject: "cnbench.{idx}.{val}"}`, rig.srv.ClientURL()))
	return h.daemonSide("nats core", "nats", cfg, func() int64 { return st.lines.Load() })
}

// coreLatency measures core NATS latency in one more trial.
func (h *harness) coreLatency(r *row, rig *natsRig, st *lineStats) {
	cfg := synthConfig(fmt.Sprintf(`{type: nats, url: %q, subject: "cnbench.{idx}.{val}"}`, rig.srv.ClientURL()))
	d, err := h.startDaemon("nats", cfg, nil)
	if err != nil {
		return
	}
	defer d.stop()
	st.takeHist()
	st.timing.Store(true)
	if _, err := h.daemonTrial(d, h.latencyRate, func() int64 { return st.lines.Load() }); err == nil {
		hh := st.takeHist()
		r.Latency = hh.summary()
	}
	st.timing.Store(false)
	r.LatencyNote = "send → delivery to a core NATS subscriber in the harness"
}

// jetStreamRows measures the JetStream sink against jspub (see natsRows'
// doc), interleaved rate by rate, one daemon per sink trial.
func (h *harness) jetStreamRows(rig *natsRig, info map[string]any) []*row {
	url := rig.srv.ClientURL()
	if err := rig.createStream("CNBENCHRAW", "cnbenchraw.>"); err != nil {
		return []*row{{Name: "raw jetstream publisher", Skipped: err.Error()}, {Name: "jetstream (file, async)", Skipped: err.Error()}}
	}
	raw := side{name: "raw jetstream publisher", trial: func(rate float64) (trial, error) {
		return h.jspubTrial(url, rate, func() int64 { return rig.streamMsgs("CNBENCHRAW") })
	}}
	js := h.daemonSide("jetstream (file, async)", "jetstream", synthConfig(fmt.Sprintf(
		`{type: nats, url: %q, subject: "cnbenchjs.{idx}.{val}", jetstream: true, stream: {name: CNBENCH, subjects: ["cnbenchjs.>"], storage: file}}`, url)),
		func() int64 { return rig.streamMsgs("CNBENCH") })
	save := h.rates
	h.rates = h.jsRates
	rows := h.interleave([]side{raw, js})
	h.rates = save
	if rows[0].ZeroLossRate > 0 && rows[1].Skipped == "" {
		rows[1].Target = "≥ 0.9 × raw jetstream publisher (same process boundaries)"
		rows[1].TargetRatio = rows[1].ZeroLossRate / rows[0].ZeroLossRate
		met := rows[1].TargetRatio >= 0.9
		rows[1].Met = &met
		info["jetstream_sink_vs_raw_publisher"] = rows[1].TargetRatio
	}
	return rows
}

// rawNATSInfo measures raw nats.go inside the harness process, for
// information: core publishing, and the in-process JetStream publisher
// earlier versions compared the sink with.
func (h *harness) rawNATSInfo(rig *natsRig, info map[string]any) {
	host, _ := os.Hostname()
	line := benchLine(host)
	info["line_bytes"] = len(line)
	if r, err := rig.rawCore(500000, line); err == nil {
		info["raw_core_publish_rate"] = r
	}
	if r, err := rig.rawJetStream(200000, []byte(strings.Repeat("x", 330))); err == nil {
		info["raw_jetstream_inprocess_rate"] = r
	}
	h.logf("raw nats.go in the harness process: core %.0f/s, JetStream async %.0f/s (330-byte bodies, no ids)", info["raw_core_publish_rate"], info["raw_jetstream_inprocess_rate"])
}
