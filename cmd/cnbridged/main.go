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
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/daemon"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitConfig is EX_CONFIG from sysexits.h: the config is invalid.
const exitConfig = 78

const usage = `cnbridged bridges the kernel connector (NETLINK_CONNECTOR) to stdout, files and NATS.

Usage:
  cnbridged [run] [--config FILE] [--set key=value]... [--log-level LEVEL]
  cnbridged validate --config FILE
  cnbridged check [--config FILE]
  cnbridged stats [--url URL]
  cnbridged emit --group G --idx I --val V [--seq S] [--ack A] [--count N] [--rate R] [--data HEX]
  cnbridged version

Without --config, /etc/cnbridged/cnbridged.yaml is read if it exists; otherwise
the built-in default sends every process event to stdout.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "stats":
		err = cmdStats(args, stdout)
	case "emit":
		err = cmdEmit(args, stdout)
	case "version":
		fmt.Fprintf(stdout, "cnbridged %s\n", version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cnbridged: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "cnbridged: invalid config:\n%s\n", indent(ce.err.Error()))
			return exitConfig
		}
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "cnbridged: %v\n", err)
		return 1
	}
	return 0
}

type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

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

// configFlags are the flags every config-reading command takes.
type configFlags struct {
	path     string
	set      []string
	logLevel string
}

func (c *configFlags) add(fs *pflag.FlagSet) {
	fs.StringVarP(&c.path, "config", "c", "", "config file (default "+config.DefaultPath+" if it exists, else the built-in default)")
	fs.StringArrayVar(&c.set, "set", nil, "override a config key, e.g. --set listener.groups=1,3 (repeatable)")
	fs.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides log.level)")
}

func (c *configFlags) options() config.Options {
	set := append([]string(nil), c.set...)
	if c.logLevel != "" {
		set = append(set, "log.level="+c.logLevel)
	}
	return config.Options{Path: c.path, Set: set}
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
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	var cf configFlags
	cf.add(fs)
	noWatch := fs.Bool("no-watch", false, "do not reload when the config file changes (SIGHUP still reloads)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := cf.options()
	cfg, err := config.Load(opts)
	if err != nil {
		return &configError{err}
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reloads := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	notify := func(state string) {
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
		Build:            daemon.BuildInfo{Version: version},
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
	if cfg.Source != "" && !*noWatch {
		go func() {
			if err := daemon.WatchConfig(ctx, cfg.Source, 250*time.Millisecond, reloads, log.Named("watch")); err != nil {
				log.Warn("not watching the config file; reload with SIGHUP", zap.Error(err))
			}
		}()
	}
	if err := d.Run(ctx, reloads); err != nil {
		log.Error("cnbridged stopped", zap.Error(err))
		return err
	}
	log.Info("cnbridged stopped")
	return nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("validate", pflag.ContinueOnError)
	var cf configFlags
	cf.add(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(cf.options())
	if err != nil {
		fmt.Fprintf(stderr, "cnbridged: invalid config:\n%s\n", indent(err.Error()))
		return exitConfig
	}
	src := cfg.Source
	if src == "" {
		src = "built-in default"
	}
	fmt.Fprintf(stdout, "config ok: %s (%d sinks, %d routes, groups %v)\n", src, len(cfg.Sinks), len(cfg.Routes), cfg.Listener.Groups)
	return 0
}

func cmdEmit(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("emit", pflag.ContinueOnError)
	group := fs.Int("group", 0, "multicast group 1..32 (required)")
	idx := fs.Uint32("idx", 0, "cn_msg id.idx")
	val := fs.Uint32("val", 0, "cn_msg id.val")
	seq := fs.Uint32("seq", 0, "seq of the first message; each next one adds 1")
	ack := fs.Uint32("ack", 0, "cn_msg ack")
	count := fs.Int("count", 1, "messages to send")
	rate := fs.Float64("rate", 0, "messages per second (0: as fast as possible)")
	data := fs.String("data", "", "payload as hex")
	if err := fs.Parse(args); err != nil {
		return err
	}
	payload, err := hex.DecodeString(*data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if len(payload) > cnmsg.MaxMsgSize-cnmsg.HeaderLen {
		return fmt.Errorf("--data: %d bytes; a connector message carries at most %d", len(payload), cnmsg.MaxMsgSize-cnmsg.HeaderLen)
	}
	if *group < 1 || *group > 32 {
		return fmt.Errorf("--group %d is outside 1..32", *group)
	}
	em, err := listener.NewEmitter()
	if err != nil {
		return err
	}
	defer em.Close()
	var buf []byte
	start := time.Now()
	for i := 0; i < *count; i++ {
		if *rate > 0 {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		buf = cnmsg.AppendMessage(buf[:0], uint32(i), 0, cnmsg.Header{
			ID:  cnmsg.ID{Idx: *idx, Val: *val},
			Seq: *seq + uint32(i), Ack: *ack,
		}, payload)
		if err := em.Emit(buf, *group); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "sent %d messages to group %d as %d.%d in %s (%.0f msg/s)\n",
		*count, *group, *idx, *val, el.Round(time.Millisecond), float64(*count)/el.Seconds())
	return nil
}
