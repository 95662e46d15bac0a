package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/daemon"
)

func newHealthCmd() *cobra.Command {
	var (
		cf      configFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask the running daemon whether it is ready (exit 0 ready, 1 not)",
		Long: `Query the running daemon's /readyz. Exit 0 when it answers 200, 1 otherwise.
For container health checks and probes: the image has no curl.

The daemon is asked where it recorded its metrics address in its state_dir
(state.json: metrics.listen takes a restart, so after a reload that changed
it the daemon is still on the old one), then on metrics.listen of the config
(a wildcard host is asked on loopback). When none answers, the error lists
every address tried and why the state gave none.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cf.options())
			if err != nil {
				return configError(err)
			}
			eps, err := daemonEndpoints(cfg, cmd.ErrOrStderr())
			if err != nil {
				return runtimeError(err)
			}
			return runtimeError(health(cmd.OutOrStdout(), eps, timeout))
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// endpoint is a base URL where the daemon's metrics endpoint may answer,
// and where that address came from.
type endpoint struct {
	base, from string
}

// endpoints are the addresses to try in turn, and why the daemon's
// runtime state gave none ("" when it did).
type endpoints struct {
	list    []endpoint
	noState string
}

// daemonEndpoints lists where the daemon of cfg serves metrics: first the
// address the running daemon recorded in its state_dir (where it is bound
// now), then metrics.listen of cfg. A note goes to notes when the two
// differ (a reload changed metrics.listen: it applies after a restart).
func daemonEndpoints(cfg *config.Config, notes io.Writer) (endpoints, error) {
	var eps endpoints
	src := cfg.Source
	if src == "" {
		src = "the built-in default"
	}
	fromConfig := "metrics.listen of " + src
	if cfg.StateDir == "" {
		eps.noState = "state_dir is empty, so the daemon records no runtime state"
	} else if rt, err := daemon.ReadRuntime(cfg.StateDir); err != nil {
		eps.noState = "no running daemon recorded: " + err.Error()
	} else if rt.Metrics == "" {
		eps.noState = fmt.Sprintf("the running daemon (pid %d, %s) serves no metrics", rt.PID, rt.Path)
	} else if base, err := metricsURL(rt.Metrics); err == nil {
		eps.list = append(eps.list, endpoint{base, fmt.Sprintf("the running daemon's, pid %d, from %s", rt.PID, rt.Path)})
		if cfg.Metrics.Listen != rt.Metrics {
			fmt.Fprintf(notes, "cnbridged: the running daemon (pid %d) serves metrics on %s; %s is %q, which applies after a restart\n",
				rt.PID, rt.Metrics, fromConfig, cfg.Metrics.Listen)
		}
	}
	base, err := metricsURL(cfg.Metrics.Listen)
	switch {
	case err != nil && len(eps.list) == 0:
		if eps.noState != "" {
			err = fmt.Errorf("%w (%s)", err, eps.noState)
		}
		return eps, err
	case err == nil && (len(eps.list) == 0 || eps.list[0].base != base):
		eps.list = append(eps.list, endpoint{base, fromConfig})
	}
	return eps, nil
}

// get asks each endpoint for path in turn and returns the first answer
// (whatever its status) and the URL that gave it; the error lists every
// address tried, and why the runtime state named none.
func (eps endpoints) get(path string, timeout time.Duration) (*http.Response, string, error) {
	c := http.Client{Timeout: timeout}
	var tried []string
	for _, ep := range eps.list {
		url := ep.base + path
		resp, err := c.Get(url)
		if err == nil {
			return resp, url, nil
		}
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		tried = append(tried, fmt.Sprintf("%s (%s): %v", url, ep.from, err))
	}
	msg := "no answer from " + strings.Join(tried, "; ")
	if eps.noState != "" {
		msg += "; " + eps.noState
	}
	return nil, "", errors.New(msg)
}

// metricsURL turns metrics.listen into a base URL this host can reach.
func metricsURL(listen string) (string, error) {
	if listen == "" {
		return "", errors.New("metrics.listen is empty: the daemon serves no metrics or health endpoint; set it (e.g. 127.0.0.1:9464)")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("metrics.listen %q: want host:port: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// health prints the daemon's /readyz answer and returns an error unless
// it is 200.
func health(out io.Writer, eps endpoints, timeout time.Duration) error {
	resp, url, err := eps.get("/readyz", timeout)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not healthy: %s: %s: %s", url, resp.Status, msg)
	}
	fmt.Fprintf(out, "%s\n", msg)
	return nil
}
