package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/query"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// queryFlags are the flags every question takes.
type queryFlags struct {
	socket, natsURL, creds, host, format, domain, bucket string
	expect                                               []string
	timeout                                              time.Duration
	wait                                                 bool
}

// newQueryCmd is "cnbridged query": questions about the process tables of
// a fleet (over NATS) or of the local daemon (over its tap socket).
func newQueryCmd() *cobra.Command {
	var qf queryFlags
	c := &cobra.Command{
		Use:   "query",
		Short: "Ask the fleet (or the local daemon) about its processes: ps, tree, lineage, info",
		Long: `Ask every host's process table, right now, over NATS (--nats), or the local
daemon over its tap socket (default ` + defaultTapSocket + `, mode 0600: run as the
daemon's user).

  ps [--where EXPR]      processes a where expression selects (the language of
                         routes' where and tap --where)
  tree [ID]              the tree under an entity id or pid (default: all)
  lineage ENTITY_ID      a process's ancestors and descendants
  info                   each host's version, table and loss

Answers are gathered until every host the fleet's inventory (a JetStream
key-value bucket each daemon keeps a heartbeat in) or --expect names has
answered, or until --timeout. Rows are printed as they come, in the text
format's columns with a HOST column, or with --format json as JSON lines of
the output contract; then a footer: who answered, who should have and did
not, what was truncated. Exit 1 when a host answered with an error or a
known host did not answer.`,
		Args: noArgs,
	}
	pf := c.PersistentFlags()
	pf.StringVar(&qf.socket, "socket", defaultTapSocket, "the local daemon's tap socket (without --nats)")
	pf.StringVar(&qf.natsURL, "nats", "", "ask the fleet over NATS at this URL")
	pf.StringVar(&qf.creds, "creds", "", "NATS credentials file (a querier's)")
	pf.StringVar(&qf.host, "host", "", "only hosts matching this glob (a name without wildcards asks that host alone)")
	pf.StringSliceVar(&qf.expect, "expect", nil, "hosts that should answer, besides the inventory's (repeatable, comma-separated)")
	pf.DurationVar(&qf.timeout, "timeout", 2*time.Second, "how long to wait for answers")
	pf.BoolVar(&qf.wait, "wait", false, "wait the whole timeout even when every known host has answered")
	pf.StringVar(&qf.format, "format", "text", "text (columns with a HOST column) or json (JSON lines)")
	pf.StringVar(&qf.bucket, "bucket", query.DefaultBucket, "the inventory's key-value bucket (\"\" for none)")
	pf.StringVar(&qf.domain, "js-domain", "", "JetStream domain of the inventory bucket")

	var (
		where   string
		maxRows int
		depth   int
	)
	ps := &cobra.Command{
		Use:   "ps",
		Short: "Processes a where expression selects (default: all)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return qf.run(cmd, query.OpPS, query.Request{Where: where, MaxRows: maxRows})
		},
	}
	ps.Flags().StringVar(&where, "where", "", `a where expression over the rows, e.g. 'process.exe.endsWith("/nc")'`)
	ps.Flags().IntVar(&maxRows, "max-rows", 0, "at most this many rows per host (default: the daemon's query.max_rows)")
	tree := &cobra.Command{
		Use:   "tree [ENTITY_ID|PID]",
		Short: "The process tree under a process (default: the whole tree)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := query.Request{Depth: depth, MaxRows: maxRows}
			if len(args) == 1 {
				req.Root = args[0]
			}
			return qf.run(cmd, query.OpTree, req)
		},
	}
	tree.Flags().IntVar(&depth, "depth", 0, "at most this many levels below the root (0: all)")
	tree.Flags().IntVar(&maxRows, "max-rows", 0, "at most this many rows per host")
	lineage := &cobra.Command{
		Use:   "lineage ENTITY_ID",
		Short: "A process's ancestors up to the table's root, and its descendants",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return qf.run(cmd, query.OpLineage, query.Request{EntityID: args[0], Depth: depth, MaxRows: maxRows})
		},
	}
	lineage.Flags().IntVar(&depth, "depth", 0, "at most this many levels of descendants (0: all)")
	lineage.Flags().IntVar(&maxRows, "max-rows", 0, "at most this many rows per host")
	info := &cobra.Command{
		Use:   "info",
		Short: "Each host's version, process table and loss",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return qf.run(cmd, query.OpInfo, query.Request{})
		},
	}
	c.AddCommand(ps, tree, lineage, info)
	return c
}

func (qf *queryFlags) run(cmd *cobra.Command, op string, req query.Request) error {
	if qf.format != "text" && qf.format != "json" {
		return fmt.Errorf("--format %q: want text or json", qf.format)
	}
	if qf.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", qf.timeout)
	}
	if qf.natsURL == "" && (qf.creds != "" || qf.host != "" || len(qf.expect) > 0 || qf.domain != "" || qf.wait) {
		return errors.New("--creds, --host, --expect, --js-domain and --wait need --nats (without it the local daemon answers)")
	}
	out := cmd.OutOrStdout()
	// On a terminal, colours (unless NO_COLOR) and rows cut to its
	// width, as run and tap do.
	p := &query.Printer{Out: out, JSON: qf.format == "json", Color: colorOn(out)}
	if f, ok := out.(*os.File); ok && isTerminal(f) {
		p.Width = terminalWidth(f)
	}
	foot := out
	if p.JSON {
		foot = cmd.ErrOrStderr()
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if qf.natsURL == "" {
		return runtimeError(qf.local(ctx, op, req, p, foot))
	}
	return runtimeError(qf.fleet(ctx, op, req, p, foot))
}

// errIncomplete is the exit status of a question some host did not answer
// well; the footer says which.
var errIncomplete = &exitError{code: exitRuntime, err: errors.New("some hosts did not answer, or answered with an error"), printed: true}

func (qf *queryFlags) local(ctx context.Context, op string, req query.Request, p *query.Printer, foot io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, qf.timeout)
	defer cancel()
	req.TimeoutMs = qf.timeout.Milliseconds()
	start := time.Now()
	a, err := query.AskLocal(ctx, qf.socket, op, req)
	if err != nil {
		return err
	}
	p.Answer(op, a)
	p.Footer(foot, &query.Result{Answers: []*query.Answer{a}, Elapsed: time.Since(start), Targeted: true}, qf.timeout)
	if a.Error != "" {
		return errIncomplete
	}
	return nil
}

func (qf *queryFlags) fleet(ctx context.Context, op string, req query.Request, p *query.Printer, foot io.Writer) error {
	opts := []nats.Option{nats.Name("cnbridged query"), nats.CustomInboxPrefix(query.InboxPrefix), nats.Timeout(qf.timeout)}
	if qf.creds != "" {
		opts = append(opts, nats.UserCredentials(qf.creds))
	}
	nc, err := nats.Connect(qf.natsURL, opts...)
	if err != nil {
		return fmt.Errorf("--nats %s: %w", sinks.RedactURLs(qf.natsURL), err)
	}
	defer nc.Close()
	k := &query.Asker{NC: nc, Bucket: qf.bucket, JSDomain: qf.domain}
	var expect []string
	for _, h := range qf.expect {
		if h = strings.TrimSpace(h); h != "" {
			expect = append(expect, h)
		}
	}
	res, err := k.Ask(ctx, query.Question{Op: op, Req: req, Hosts: qf.host, Expect: expect, Timeout: qf.timeout, Wait: qf.wait},
		func(a *query.Answer) { p.Answer(op, a) })
	if err != nil {
		return err
	}
	p.Footer(foot, res, qf.timeout)
	if len(res.Silent) > 0 {
		return errIncomplete
	}
	for _, a := range res.Answers {
		if a.Error != "" {
			return errIncomplete
		}
	}
	return nil
}
