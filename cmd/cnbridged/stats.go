package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/config"
)

func newStatsCmd() *cobra.Command {
	var (
		cf       configFlags
		url      string
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Print rates, loss, drops and sink queues of the running daemon",
		Long: `Scrape the running daemon's metrics twice, --interval apart, and print rates,
loss, drops and sink queues. The endpoint is --url, or else metrics.listen
from the config (same flags as run): first the address the running daemon
recorded in its state_dir, then metrics.listen, as health does.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				cfg, err := config.Load(cf.options())
				if err != nil {
					return configError(err)
				}
				eps, err := daemonEndpoints(cfg, cmd.ErrOrStderr())
				if err != nil {
					return runtimeError(err)
				}
				resp, u, err := eps.get("/metrics", 5*time.Second)
				if err != nil {
					return runtimeError(fmt.Errorf("scrape: %w", err))
				}
				resp.Body.Close()
				url = u
			}
			return runtimeError(cmdStats(cmd.OutOrStdout(), url, interval))
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().StringVar(&url, "url", "", "the daemon's metrics endpoint (default: the running daemon's address from its state_dir, else http://<metrics.listen>/metrics from the config)")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between the two scrapes used for rates")
	return cmd
}

// cmdStats prints what an operator wants to see when paged: rates, loss,
// drops and sink queues, from two scrapes of the metrics endpoint.
// With an interval of 0 or less it scrapes once and shows no rates.
func cmdStats(stdout io.Writer, url string, interval time.Duration) error {
	a, err := scrape(url)
	if err != nil {
		return err
	}
	b := a
	if interval > 0 {
		time.Sleep(interval)
		if b, err = scrape(url); err != nil {
			return err
		}
	}
	// rate formats the per-second change of a counter, "-" without an
	// interval.
	rate := func(now, before float64) string {
		if interval <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", (now-before)/interval.Seconds())
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// LOST is loss while listening; NOT LISTENING the restart gap (seqs
	// numbered while no cnbridged read them).
	fmt.Fprintf(w, "ID\tRECEIVED\tRATE/s\tLOST\tNOT LISTENING\tRESETS\tDUPLICATES\n")
	for _, id := range labelPairs(b, "cnbridged_messages_received_total", "idx", "val") {
		sel := map[string]string{"idx": id[0], "val": id[1]}
		when := func(w string) map[string]string { return map[string]string{"idx": id[0], "val": id[1], "when": w} }
		rx := value(b, "cnbridged_messages_received_total", sel)
		fmt.Fprintf(w, "%s.%s\t%.0f\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", id[0], id[1], rx,
			rate(rx, value(a, "cnbridged_messages_received_total", sel)),
			value(b, "cnbridged_messages_lost_total", when("listening")),
			value(b, "cnbridged_messages_lost_total", when("not_listening")),
			value(b, "cnbridged_seq_resets_total", sel),
			value(b, "cnbridged_messages_duplicate_total", sel))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "SOCKET\tOVERRUNS\tKERNEL DROPS\tSUBSCRIBED\n")
	fmt.Fprintf(w, "connector\t%.0f\t%.0f\t%.0f\n",
		value(b, "cnbridged_socket_overruns_total", nil),
		value(b, "cnbridged_socket_drops_total", nil),
		value(b, "cnbridged_subscribed", nil))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "REJECTED\tMALFORMED\tUNTRUSTED\tUNROUTED\n")
	fmt.Fprintf(w, "\t%.0f\t%.0f\t%.0f\n",
		value(b, "cnbridged_messages_rejected_total", map[string]string{"reason": "malformed"}),
		value(b, "cnbridged_messages_rejected_total", map[string]string{"reason": "untrusted_sender"}),
		value(b, "cnbridged_messages_rejected_total", map[string]string{"reason": "unrouted"}))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "FILTERED\tPROC_EVENTS\tROUTE EVENTS\tTHREADS\n")
	fmt.Fprintf(w, "\t%.0f\t%.0f\t%.0f\n",
		value(b, "cnbridged_proc_events_filtered_total", nil),
		value(b, "cnbridged_route_events_filtered_total", nil),
		value(b, "cnbridged_thread_events_filtered_total", nil))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "SINK\tSENT\tRATE/s\tDROPPED\tFAILED\tQUEUE\n")
	for _, s := range labelPairs(b, "cnbridged_sink_queue_capacity", "sink") {
		sel := func(r string) map[string]string { return map[string]string{"sink": s[0], "result": r} }
		sent := value(b, "cnbridged_sink_messages_total", sel("sent"))
		qlen := value(b, "cnbridged_sink_queue_length", map[string]string{"sink": s[0]})
		qcap := value(b, "cnbridged_sink_queue_capacity", map[string]string{"sink": s[0]})
		fill := 0.0
		if qcap > 0 {
			fill = 100 * qlen / qcap
		}
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%.0f\t%.0f\t%.0f/%.0f (%.1f%%)\n", s[0], sent,
			rate(sent, value(a, "cnbridged_sink_messages_total", sel("sent"))),
			value(b, "cnbridged_sink_messages_total", sel("dropped")),
			value(b, "cnbridged_sink_messages_total", sel("failed")),
			qlen, qcap, fill)
	}
	return w.Flush()
}

func scrape(url string) (map[string]*dto.MetricFamily, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// value sums the samples of name whose labels include sel.
func value(fams map[string]*dto.MetricFamily, name string, sel map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		if !matches(m, sel) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func matches(m *dto.Metric, sel map[string]string) bool {
	for k, v := range sel {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// labelPairs lists the distinct values of labels across name's samples.
func labelPairs(fams map[string]*dto.MetricFamily, name string, labels ...string) [][]string {
	f, ok := fams[name]
	if !ok {
		return nil
	}
	seen := map[string][]string{}
	for _, m := range f.GetMetric() {
		vals := make([]string, len(labels))
		for i, want := range labels {
			for _, l := range m.GetLabel() {
				if l.GetName() == want {
					vals[i] = l.GetValue()
				}
			}
		}
		seen[strings.Join(vals, "\x00")] = vals
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out
}
