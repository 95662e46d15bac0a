package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnbridged/cnbridged/internal/config"
)

func newHealthCmd() *cobra.Command {
	var (
		cf      configFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask the running daemon whether it is ready (exit 0 ready, 1 not)",
		Long: `Query the running daemon's /readyz on the metrics address of its config
(metrics.listen; a wildcard host is asked on loopback). Exit 0 when it answers
200, 1 otherwise. For container health checks and probes: the image has no curl.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cf.options())
			if err != nil {
				return configError(err)
			}
			base, err := metricsURL(cfg.Metrics.Listen)
			if err != nil {
				return runtimeError(err)
			}
			return runtimeError(health(cmd.OutOrStdout(), base+"/readyz", timeout))
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
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
func health(out io.Writer, url string, timeout time.Duration) error {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not healthy: %s: %s", resp.Status, msg)
	}
	fmt.Fprintf(out, "%s\n", msg)
	return nil
}
