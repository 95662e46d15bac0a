// Command cnbridged bridges the Linux kernel connector (NETLINK_CONNECTOR)
// to stdout, files and NATS.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/daemon"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// Exit codes (documented in README "Commands").
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	// exitConfig is EX_CONFIG from sysexits.h: the config is invalid.
	exitConfig = 78
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. It is the
// one place that prints a command's error.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Everything cobra rejects before a command runs: unknown
		// commands and flags, bad flag values, missing required flags.
		fmt.Fprintf(stderr, "cnbridged: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	if !ee.printed {
		if ee.code == exitConfig {
			fmt.Fprintf(stderr, "cnbridged: invalid config:\n%s\n", indent(ee.err.Error()))
		} else {
			fmt.Fprintf(stderr, "cnbridged: %v\n", ee.err)
		}
	}
	return ee.code
}

// exitError carries a command's error with its exit code. printed is set
// when the error was already logged, so run does not print it again.
type exitError struct {
	code    int
	err     error
	printed bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// configError marks an invalid configuration (exit 78).
func configError(err error) error { return &exitError{code: exitConfig, err: err} }

// runtimeError marks a failure of the command itself (exit 1).
func runtimeError(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitRuntime, err: err}
}

func indent(s string) string {
	out := "  "
	for _, c := range s {
		out += string(c)
		if c == '\n' {
			out += "  "
		}
	}
	return out
}

// newRootCmd builds the command tree. The root command runs the daemon,
// so `cnbridged` alone is `cnbridged run`.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	var rf runFlags
	root := &cobra.Command{
		Use:   "cnbridged",
		Short: "Bridge the Linux kernel connector to stdout, files and NATS",
		Long: `cnbridged bridges the kernel connector (NETLINK_CONNECTOR) to stdout, files and NATS.

Without a command it runs the daemon (as "cnbridged run"). Without --config,
` + config.DefaultPath + ` is read if it exists; otherwise the built-in
default sends every process event to stdout.

Exit codes: 0 ok, 1 runtime error, 2 usage error, 78 invalid config.`,
		Version:           versionString(),
		Args:              noArgs,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runtimeError(cmdRun(cmd.Context(), rf))
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	rf.add(root.Flags())

	runCmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon (the default command)",
		Long: `Run the daemon: subscribe to the kernel connector and deliver events to the
configured sinks until SIGINT or SIGTERM. SIGHUP (or a change to the config
file, unless --no-watch) reloads the config; SIGUSR1 reopens file sinks.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runtimeError(cmdRun(cmd.Context(), rf))
		},
	}
	rf.add(runCmd.Flags())

	root.AddCommand(
		runCmd,
		newValidateCmd(),
		newCheckCmd(),
		newStatsCmd(),
		newHealthCmd(),
		newEmitCmd(),
		newTapCmd(),
		newTopCmd(),
		newQueryCmd(),
		newVersionCmd(),
		newManCmd(root),
	)
	registerValueCompletions(root)
	return root
}

// noArgs rejects positional arguments, naming the first one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return errors.New(msg)
	}
	return fmt.Errorf("unexpected argument %q: %s takes none", args[0], cmd.CommandPath())
}

// configFlags are the flags every config-reading command takes, with the
// same names and meaning everywhere.
type configFlags struct {
	path     string
	set      []string
	logLevel string
}

func (c *configFlags) add(fs *pflag.FlagSet) {
	fs.StringVarP(&c.path, "config", "c", "", "config file (default "+config.DefaultPath+" if it exists, else the built-in default)")
	fs.StringArrayVar(&c.set, "set", nil, "override a config key, e.g. --set listener.groups=1,3, or a list item: --set 'routes[0].enrich=true' (repeatable)")
	fs.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides log.level)")
}

func (c *configFlags) options() config.Options {
	set := append([]string(nil), c.set...)
	if c.logLevel != "" {
		set = append(set, "log.level="+c.logLevel)
	}
	return config.Options{Path: c.path, Set: set}
}

// runFlags are run's flags (also the root command's).
type runFlags struct {
	configFlags
	noWatch    bool
	format     formatFlag
	cpuProfile string
}

// formatFlag is --format: json or text, rejected at parse time otherwise
// (a usage error, exit 2).
type formatFlag string

func (f *formatFlag) String() string { return string(*f) }
func (f *formatFlag) Type() string   { return "json|text" }
func (f *formatFlag) Set(v string) error {
	if v != config.FormatJSON && v != config.FormatText {
		return fmt.Errorf("%q is not json or text", v)
	}
	*f = formatFlag(v)
	return nil
}

func (r *runFlags) add(fs *pflag.FlagSet) {
	r.configFlags.add(fs)
	fs.BoolVar(&r.noWatch, "no-watch", false, "do not reload when the config file changes (SIGHUP still reloads)")
	fs.Var(&r.format, "format", "output format of every stdout sink: json or text (default: the built-in config writes text with enrichment to a terminal, JSON lines otherwise; config files as written)")
	// For the load harness (cmd/cnbench --profile): a pprof CPU profile of
	// the whole run, written when the daemon stops.
	fs.StringVar(&r.cpuProfile, "cpu-profile", "", "write a pprof CPU profile of the run to this file")
	fs.MarkHidden("cpu-profile")
}

func newLogger(cfg config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if isTerminal(os.Stderr) {
			format = "console"
		}
	}
	var zc zap.Config
	if format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.DisableStacktrace = true // an error line is one line; its fields say what failed
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

func cmdRun(ctx context.Context, rf runFlags) error {
	opts := rf.options()
	opts.Format = string(rf.format)
	stdoutTTY := isTerminal(os.Stdout)
	opts.Terminal = stdoutTTY
	cfg, err := config.Load(opts)
	if err != nil {
		return configError(err)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	// Can this process join the connector's groups? Asked of the kernel
	// now; when it cannot, that is the cause to log first, and nothing is
	// started. Otherwise the answer is logged once the daemon runs.
	rights := listener.ProbeJoin()
	if err := joinRefusal(rights); err != nil {
		log.Error("cannot start", zap.String("stage", "listener"), zap.Error(err),
			zap.Bool("cap_net_admin", rights.CapNetAdmin), zap.Stringer("unprivileged_join", rights.Unprivileged))
		return &exitError{code: exitRuntime, err: err, printed: true}
	}
	var hidepid string
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		hidepid = hidePID(mi)
	}
	var running sync.Once

	if ctx == nil {
		ctx = context.Background()
	}
	if rf.cpuProfile != "" {
		f, err := os.Create(rf.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	reloads := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	notify := func(state string) {
		if state == "READY=1" {
			running.Do(func() {
				logJoinRights(log, rights)
				logProcVisibility(log, cfg, hidepid)
			})
		}
		if _, err := sddaemon.SdNotify(false, state); err != nil {
			log.Debug("sd_notify", zap.Error(err))
		}
	}
	watchdog, _ := sddaemon.SdWatchdogEnabled(false)
	d := daemon.New(cfg, daemon.Options{
		Log:              log,
		Notify:           notify,
		Load:             func() (*config.Config, error) { return config.Load(opts) },
		WatchdogInterval: watchdog,
		Build:            buildInfo(),
		// Colours for text on a terminal, unless NO_COLOR is set
		// (no-color.org: present and not empty).
		StdoutColor: colorOn(os.Stdout),
		StdoutWidth: terminalWidth(os.Stdout),
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGHUP:
					log.Info("SIGHUP: reloading config")
					select {
					case reloads <- struct{}{}:
					default:
					}
				case syscall.SIGUSR1:
					d.Reopen()
				}
			}
		}
	}()
	if cfg.Source != "" && !rf.noWatch {
		go func() {
			if err := daemon.WatchConfig(ctx, cfg.Source, 250*time.Millisecond, reloads, log.Named("watch")); err != nil {
				log.Warn("not watching the config file; reload with SIGHUP", zap.Error(err))
			}
		}()
	}
	// Run's last log line is its stop summary, with the error if any.
	if err := d.Run(ctx, reloads); err != nil {
		return &exitError{code: exitRuntime, err: err, printed: true}
	}
	return nil
}

func newValidateCmd() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file without running (exit 78 if invalid)",
		Long: `Load and validate the config exactly as run would, print a one-line summary
and exit 0, or print every problem and exit 78.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cf.options())
			if err != nil {
				return configError(err)
			}
			src := cfg.Source
			if src == "" {
				src = "built-in default"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "config ok: %s (%d sinks, %d routes, groups %v)\n", src, len(cfg.Sinks), len(cfg.Routes), cfg.Listener.Groups)
			return nil
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

func newCheckCmd() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight: can this host or container run cnbridged with this config?",
		Long: `Print one line per check of this host, user and config, and exit 1 if any
failed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := cmdCheck(cf, cmd.OutOrStdout()); code != 0 {
				return &exitError{code: code, err: errors.New("check failed"), printed: true}
			}
			return nil
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

func newEmitCmd() *cobra.Command {
	var o emitOptions
	cmd := &cobra.Command{
		Use:   "emit",
		Short: "Multicast synthetic connector messages to a group (for tests)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runtimeError(cmdEmit(o, cmd.OutOrStdout()))
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.group, "group", 0, "multicast group 1..32 (required)")
	fs.Uint32Var(&o.idx, "idx", 0, "cn_msg id.idx (required)")
	fs.Uint32Var(&o.val, "val", 0, "cn_msg id.val (required)")
	fs.Uint32Var(&o.seq, "seq", 0, "seq of the first message; each next one adds 1")
	fs.Uint32Var(&o.ack, "ack", 0, "cn_msg ack")
	fs.IntVar(&o.count, "count", 1, "messages to send")
	fs.Float64Var(&o.rate, "rate", 0, "messages per second (0: as fast as possible)")
	fs.StringVar(&o.data, "data", "", "payload as hex")
	for _, f := range []string{"group", "idx", "val"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

type emitOptions struct {
	group    int
	idx, val uint32
	seq, ack uint32
	count    int
	rate     float64
	data     string
}

func cmdEmit(o emitOptions, stdout io.Writer) error {
	payload, err := hex.DecodeString(o.data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if len(payload) > cnmsg.MaxMsgSize-cnmsg.HeaderLen {
		return fmt.Errorf("--data: %d bytes; a connector message carries at most %d", len(payload), cnmsg.MaxMsgSize-cnmsg.HeaderLen)
	}
	if o.group < 1 || o.group > 32 {
		return fmt.Errorf("--group %d is outside 1..32", o.group)
	}
	em, err := listener.NewEmitter()
	if err != nil {
		return err
	}
	defer em.Close()
	var buf []byte
	start := time.Now()
	for i := 0; i < o.count; i++ {
		if o.rate > 0 {
			due := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		buf = cnmsg.AppendMessage(buf[:0], uint32(i), 0, cnmsg.Header{
			ID:  cnmsg.ID{Idx: o.idx, Val: o.val},
			Seq: o.seq + uint32(i), Ack: o.ack,
		}, payload)
		if err := em.Emit(buf, o.group); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "sent %d messages to group %d as %d.%d in %s (%.0f msg/s)\n",
		o.count, o.group, o.idx, o.val, el.Round(time.Millisecond), float64(o.count)/el.Seconds())
	return nil
}
