package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/top"
)

// newTopCmd is "cnbridged top": a live full-screen view of event rates by
// host and type, loss, sink drops and queue fill.
func newTopCmd() *cobra.Command {
	var (
		url, natsURL, subject, creds, host string
		interval                           time.Duration
	)
	c := &cobra.Command{
		Use:   "top",
		Short: "Live view of event rates, loss, sink drops and queue fill",
		Long: `A live full-screen view: event rates by host and type, messages lost, and
(for the local daemon, from its metrics endpoint) each sink's rate, drops
and queue fill. With --nats it counts the events every host publishes (JSON
format) on --subject instead: rates and loss markers across the fleet.
q quits.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return errors.New("--interval must be positive")
			}
			out := cmd.OutOrStdout()
			if o, ok := out.(*os.File); !ok || !isTerminal(o) {
				return runtimeError(errors.New("top draws a live screen and needs a terminal on stdout; for a table, use cnbridged stats"))
			}
			var src top.Sampler
			if natsURL != "" {
				var opts []nats.Option
				if creds != "" {
					opts = append(opts, nats.UserCredentials(creds))
				}
				f, err := top.NewFleet(natsURL, subject, opts...)
				if err != nil {
					return runtimeError(err)
				}
				defer f.Close()
				src = f
			} else {
				if host == "" {
					host, _ = os.Hostname()
				}
				src = &top.Metrics{URL: url, Host: host}
			}
			// The terminal is touched only from here: bubbletea v2 and
			// lipgloss v2 query nothing when imported (v1's init asked
			// every command's terminal for its background colour).
			m := top.NewModel(src, interval, top.NewStyles(true))
			opts := []tea.ProgramOption{tea.WithContext(cmd.Context()), tea.WithOutput(out)}
			// Keys from stdin when it is the terminal, else from the
			// controlling terminal (top </dev/null); with neither, no
			// keys: SIGINT (Ctrl-C) or SIGTERM quits.
			if in, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(in) {
				opts = append(opts, tea.WithInput(in))
			} else if tin, tout, err := tea.OpenTTY(); err == nil {
				defer tin.Close()
				defer tout.Close()
				opts = append(opts, tea.WithInput(tin))
			} else {
				opts = append(opts, tea.WithInput(nil))
				fmt.Fprintln(cmd.ErrOrStderr(), "cnbridged top: no terminal to read keys from (stdin is not one, and no controlling terminal); Ctrl-C quits")
			}
			_, err := tea.NewProgram(m, opts...).Run()
			if errors.Is(err, tea.ErrProgramKilled) && cmd.Context().Err() != nil {
				return nil
			}
			return runtimeError(err)
		},
	}
	fl := c.Flags()
	fl.StringVar(&url, "url", "http://127.0.0.1:9464/metrics", "the local daemon's metrics endpoint")
	fl.StringVar(&host, "host", "", "the host name to show for the local daemon (default: this machine's)")
	fl.StringVar(&natsURL, "nats", "", "count the fleet's events from NATS at this URL instead")
	fl.StringVar(&subject, "subject", "cn.>", "with --nats: the subject the hosts publish on")
	fl.StringVar(&creds, "creds", "", "NATS credentials file")
	fl.DurationVar(&interval, "interval", time.Second, "time between samples")
	return c
}
