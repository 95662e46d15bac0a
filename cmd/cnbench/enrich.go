package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"
)

// enrichReport compares enrichment under the same process storm for the
// daemon built from this tree and, when given, a baseline binary.
type enrichReport struct {
	Workers int         `json:"workers"`
	Seconds float64     `json:"seconds"`
	Sides   []stormSide `json:"sides"`
}

// enrichResults are the cnbridged_enrich_total results, old and new names.
var enrichResults = []string{"table", "read", "ok", "cached", "gone", "error", "backlog", "skipped"}

// enrich runs the storm under a daemon with one enriching route (file
// sink), for the baseline binary (if any) and this tree's, in turn.
func (h *harness) enrich(dur time.Duration, workers, rounds int, daemons []coverageDaemon) *enrichReport {
	rep := &enrichReport{Workers: workers, Seconds: dur.Seconds()}
	type daemonRun struct {
		name, bin, route string
		sets             []string
	}
	var bins []daemonRun
	for round := range max(rounds, 1) {
		order := slices.Clone(daemons)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, d := range order {
			name := d.name
			if d.bin != h.bin {
				name += " (" + filepath.Base(d.bin) + ")"
			}
			if rounds > 1 {
				name += fmt.Sprintf(" #%d", round+1)
			}
			bins = append(bins, daemonRun{name, d.bin, d.route, d.sets})
		}
	}
	for i, b := range bins {
		side := stormSide{Name: "enrich: " + b.name, LostHow: "cnbridged_messages_lost_total{idx=1,val=1}"}
		path := filepath.Join(h.tmp, fmt.Sprintf("enrich-%d.jsonl", i))
		route := ""
		if b.route != "" {
			route = ", " + b.route
		}
		cfg := fmt.Sprintf(`log: {level: warn, format: json}
listener: {groups: [1], receive_buffer_bytes: %d}
sinks:
  out: {type: file, path: %q}
routes:
  - {match: "1.1", enrich: true, sinks: [out]%s}
`, 32<<20, path, route)
		saved, savedSets := h.bin, h.sets
		h.bin, h.noStateDir, h.sets = b.bin, b.bin != saved, append(append([]string(nil), h.sets...), b.sets...)
		d, err := h.startDaemon(fmt.Sprintf("enrich-%d", i), cfg, nil)
		h.bin, h.noStateDir, h.sets = saved, false, savedSets
		if err != nil {
			side.Skipped = err.Error()
			rep.Sides = append(rep.Sides, side)
			continue
		}
		m0 := d.metrics()
		c0 := countsOf(m0, "1", "1")
		cpu0 := cpuSeconds(d.pid)
		rcpu0, reader := readerCPUSeconds(d.pid)
		s, err := h.runStorm(dur, workers)
		// Let the enricher and the sink finish what they hold.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			if m := d.metrics(); m.get("cnbridged_enrich_queue_length") == 0 && m.get("cnbridged_sink_queue_length", "sink", "out") == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		m1 := d.metrics()
		c := countsOf(m1, "1", "1").sub(c0)
		cpu := cpuSeconds(d.pid) - cpu0
		rcpu, _ := readerCPUSeconds(d.pid)
		rss := float64(statusKiB(d.pid, "VmHWM")) / 1024
		d.stop()
		if err != nil {
			side.Skipped = err.Error()
			rep.Sides = append(rep.Sides, side)
			continue
		}
		side.Processes, side.ProcPerSec = s.Processes, float64(s.Processes)/s.Seconds
		side.Events, side.EventsPerS = int64(c.Received), c.Received/s.Seconds
		side.Lost, side.CPUSecs = int64(c.SeqLost), cpu
		res := map[string]float64{}
		total := 0.0
		for _, r := range enrichResults {
			v := m1.get("cnbridged_enrich_total", "result", r) - m0.get("cnbridged_enrich_total", "result", r)
			if v != 0 {
				res[r] = v
				total += v
			}
		}
		side.Detail = map[string]any{"enrich_results": res, "enriched_events": total,
			"cpu_us_per_event": 1e6 * cpu / max(c.Received, 1), "threads_churned": s.Threads,
			"sink_sent": c.SinkSent, "sink_dropped": c.SinkDropped, "peak_rss_mib": rss,
			"socket_drops": c.SocketDrops, "socket_overruns": c.Overruns}
		// The route's stage, when it has one: what it was offered, by outcome.
		stage := map[string]float64{}
		for _, o := range []string{"sent", "filtered", "where_error", "suppressed", "folded"} {
			if v := m1.get("cnbridged_route_records_total", "outcome", o) - m0.get("cnbridged_route_records_total", "outcome", o); v != 0 {
				stage[o] = v
			}
		}
		if len(stage) > 0 {
			side.Detail["route_stage"] = stage
		}
		side.Detail["lines_per_process"] = c.SinkSent / max(float64(s.Processes), 1)
		if reader {
			// The reader's own thread (SCHED_FIFO: this tree's build), and
			// the part of it spent reading /proc for execs.
			side.Detail["reader_cpu_us_per_event"] = 1e6 * (rcpu - rcpu0) / max(c.Received, 1)
		}
		if capSecs := m1.get("cnbridged_enrich_capture_seconds_total") - m0.get("cnbridged_enrich_capture_seconds_total"); capSecs > 0 {
			side.Detail["capture_us_per_event"] = 1e6 * capSecs / max(c.Received, 1)
			capRes := map[string]float64{}
			for _, r := range []string{"received", "partial", "late", "gone", "error"} {
				if v := m1.get("cnbridged_enrich_capture_total", "result", r) - m0.get("cnbridged_enrich_capture_total", "result", r); v != 0 {
					capRes[r] = v
				}
			}
			side.Detail["capture_results"] = capRes
		}
		rep.Sides = append(rep.Sides, side)
		h.logf("enrich: %s %+v", b.name, side)
	}
	return rep
}

func printEnrich(w io.Writer, e *enrichReport) {
	fmt.Fprintf(w, "\nenrichment under the storm: %d workers, %.0f s per daemon\n", e.Workers, e.Seconds)
	fmt.Fprintf(w, "%-34s %10s %10s %10s %8s %8s\n", "daemon", "procs/s", "events", "events/s", "lost", "CPU s")
	for _, x := range e.Sides {
		if x.Skipped != "" {
			fmt.Fprintf(w, "%-34s skipped: %s\n", x.Name, x.Skipped)
			continue
		}
		fmt.Fprintf(w, "%-34s %10.0f %10d %10.0f %8d %8.2f  %v\n", x.Name, x.ProcPerSec, x.Events, x.EventsPerS, x.Lost, x.CPUSecs, x.Detail)
	}
}
