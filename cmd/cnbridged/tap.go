package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/tap"
	"github.com/cnbridged/cnbridged/internal/where"
)

// defaultTapSocket is tap.socket's default.
const defaultTapSocket = "/run/cnbridged/tap.sock"

// newTapCmd is "cnbridged tap": the live view of events, from the local
// daemon's tap socket or from NATS.
func newTapCmd() *cobra.Command {
	var (
		socket, natsURL, subject, stream, domain, creds string
		since                                           time.Duration
		sinceSeq                                        uint64
		f                                               tap.Filter
		jsonOut                                         bool
		pids, ppids                                     []uint
		whereExpr                                       string
	)
	c := &cobra.Command{
		Use:   "tap",
		Short: "Show events live: from the local daemon's tap socket, or from NATS",
		Long: `Show events live, one aligned line each in the stdout text format's columns
with the host added (time, host, event, pid, ppid, user, exit status,
duration, process), or with --json the event lines as they are.
Loss, gap and lost-exit markers are always shown (only --host filters them),
and so are the lines this reader lost by reading too slowly (tap_dropped).

Sources: the local daemon's tap socket (default ` + defaultTapSocket + `, mode
0600: run as the daemon's user), or NATS with --nats URL and --subject (core)
or --stream (JetStream, from --since or --since-seq with an ephemeral ordered
consumer).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.PIDs, err = toU32("--pid", pids); err != nil {
				return err
			}
			if f.PPIDs, err = toU32("--ppid", ppids); err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			if whereExpr != "" {
				x, err := where.Compile(whereExpr)
				if err != nil {
					return fmt.Errorf("--where: %w", err)
				}
				f.Where = x
			}
			if natsURL == "" && (subject != "" || stream != "" || since != 0 || sinceSeq != 0) {
				return errors.New("--subject, --stream, --since and --since-seq need --nats")
			}
			if stream == "" && (since != 0 || sinceSeq != 0) {
				return errors.New("--since and --since-seq need --stream")
			}
			out := cmd.OutOrStdout()
			// On a terminal, colours (unless NO_COLOR) and rows cut to
			// its width at start, as run does.
			text := tap.Formatter{Color: colorOn(out)}
			if o, ok := out.(*os.File); ok && isTerminal(o) {
				text.Width = terminalWidth(o)
			}
			p := tap.NewPrinter(out, f, jsonOut, text)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if natsURL != "" {
				src := &tap.NATSSource{URL: natsURL, Subject: subject, Stream: stream, Domain: domain, Since: since, SinceSeq: sinceSeq}
				if creds != "" {
					src.Opts = append(src.Opts, nats.UserCredentials(creds))
				}
				err = src.Read(ctx, p.Line)
			} else {
				err = tap.ReadSocket(ctx, socket, p.Line)
			}
			if p.WhereErrors > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "cnbridged tap: --where could not evaluate %d lines, not shown (last: %v); has(…) or ?. test a member a line may not carry\n", p.WhereErrors, p.WhereError)
			}
			if p.Unparsed > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "cnbridged tap: skipped %d lines that were not event JSON (a sink with format: raw?)\n", p.Unparsed)
			}
			return runtimeError(err)
		},
	}
	fl := c.Flags()
	fl.StringVar(&socket, "socket", defaultTapSocket, "the daemon's tap socket (tap.socket)")
	fl.StringVar(&natsURL, "nats", "", "read from NATS at this URL instead of the local daemon")
	fl.StringVar(&subject, "subject", "", "NATS subject (wildcards allowed), e.g. 'cn.*.proc.exec'; with --stream, a filter on it")
	fl.StringVar(&stream, "stream", "", "JetStream stream to read with an ephemeral ordered consumer")
	fl.StringVar(&domain, "js-domain", "", "JetStream domain of the stream (a leaf node's domain)")
	fl.StringVar(&creds, "creds", "", "NATS credentials file")
	fl.DurationVar(&since, "since", 0, "with --stream: start this long ago (e.g. 10m)")
	fl.Uint64Var(&sinceSeq, "since-seq", 0, "with --stream: start at this stream sequence")
	fl.StringSliceVar(&f.Hosts, "host", nil, "only these hosts (repeatable, comma-separated)")
	fl.StringSliceVar(&f.Events, "event", nil, "only these events: fork, exec, exit, uid, gid, sid, comm, ptrace, coredump, msg (repeatable)")
	fl.StringVar(&f.Exe, "exe", "", "only executables matching this glob (the base name, or the path when it has a /)")
	fl.StringVar(&f.Comm, "comm", "", "only command names matching this glob")
	fl.UintSliceVar(&pids, "pid", nil, "only these pids (the child of a fork)")
	fl.UintSliceVar(&ppids, "ppid", nil, "only these parent pids")
	fl.StringSliceVar(&f.Containers, "container", nil, "only these container ids (or prefixes)")
	fl.StringVar(&f.Under, "under", "", "only a process and its descendants: an entity id, or a glob on its executable's name (e.g. sshd); needs enrichment with ancestors")
	fl.StringVar(&whereExpr, "where", "", `only lines this CEL expression selects, with the JSON line's names, as a route's where (README "Filtering"), e.g. 'process.exe.endsWith("/curl") && has(process.container_id)'`)
	fl.BoolVar(&jsonOut, "json", false, "print the event JSON lines as received")
	return c
}

// colorOn reports whether w is a terminal and NO_COLOR is not set: the
// same test as run's for its stdout (/dev/null is a character device but
// no terminal).
func colorOn(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f) && os.Getenv("NO_COLOR") == ""
}

// toU32 converts pids, which must fit in 32 bits.
func toU32(flag string, v []uint) ([]uint32, error) {
	out := make([]uint32, len(v))
	for i, x := range v {
		if x > math.MaxUint32 {
			return nil, fmt.Errorf("%s %d: not a pid (at most %d)", flag, x, uint32(math.MaxUint32))
		}
		out[i] = uint32(x)
	}
	return out, nil
}
