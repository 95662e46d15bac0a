// Package config loads and validates cnbridged's configuration: one typed
// struct, read from a YAML file by a viper instance, with every fixed key
// overridable as CNBRIDGED_<SECTION>_<KEY> and by --set key=value flags.
package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/cnbridged/cnbridged/internal/query"
	"github.com/cnbridged/cnbridged/internal/ratelimit"
	"github.com/cnbridged/cnbridged/internal/requests"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/sinks"
	"github.com/cnbridged/cnbridged/internal/where"
)

// DefaultPath is read when no --config is given and the file exists.
const DefaultPath = "/etc/cnbridged/cnbridged.yaml"

// Config is the whole configuration.
//
// Every field says how a reload treats it in its reload tag (see
// reload.go): apply (a reload applies it), restart (it applies only after
// a restart; a reload that changes it says so, naming the key), refuse (a
// reload that changes it fails), fields (a section whose fields each say)
// or - (not a key: derived by Validate, or bookkeeping). TestReloadDeclared
// fails for a field that says none.
type Config struct {
	Host     string            `mapstructure:"host" reload:"refuse"` // every sink stamps it
	Log      Log               `mapstructure:"log" reload:"restart"`
	Listener Listener          `mapstructure:"listener" reload:"fields"`
	Ledger   Ledger            `mapstructure:"ledger" reload:"restart"`
	Metrics  Metrics           `mapstructure:"metrics" reload:"fields"`
	Tap      Tap               `mapstructure:"tap" reload:"restart"`
	Sinks    map[string]*Sink  `mapstructure:"-" reload:"apply"` // decoded per type by Load
	Routes   []Route           `mapstructure:"routes" reload:"apply"`
	Requests []requests.Config `mapstructure:"requests" reload:"refuse"` // they keep their sink's connection
	// Query is the fleet query service and the bounds of its answers.
	Query query.Config `mapstructure:"query" reload:"restart"`

	// Process enrichment (routes with enrich: true).
	EnrichMaxCmdlineBytes int `mapstructure:"enrich_max_cmdline_bytes" reload:"restart"`
	EnrichQueueSize       int `mapstructure:"enrich_queue_size" reload:"restart"`
	// EnrichRedact are RE2 patterns: in every captured argument, each
	// pattern's first capture group is replaced by "*****".
	EnrichRedact []string     `mapstructure:"enrich_redact" reload:"restart"`
	ProcessTable ProcessTable `mapstructure:"process_table" reload:"restart"`

	// ShutdownTimeout bounds a requested stop: reading what the socket
	// still holds and draining every sink.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" reload:"apply"`
	// StateDir holds the restart trace (statefile); "" disables it.
	StateDir string `mapstructure:"state_dir" reload:"restart"`

	// Source is the file the config was read from ("" for the built-in
	// default). It is not a config key.
	Source string `mapstructure:"-" reload:"-"`
}

// ProcessTable bounds the process table kept for enrichment.
type ProcessTable struct {
	MaxEntries int `mapstructure:"max_entries"` // processes plus threads
	// ExecReaders is how many goroutines may read /proc at once for a
	// burst of execs (1: the enricher alone).
	ExecReaders int `mapstructure:"exec_readers"`
	// CaptureBudget is how long the kernel reader may spend per batch
	// reading /proc for execs as it receives them (0: not at all; the
	// enricher reads them later, marked late).
	CaptureBudget time.Duration `mapstructure:"capture_budget"`
}

// Log configures the daemon's own logging.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // auto (console on a terminal, else json), json, console
}

// Listener configures the connector socket.
type Listener struct {
	Groups             []int         `mapstructure:"groups" reload:"apply"`
	ReceiveBufferBytes int           `mapstructure:"receive_buffer_bytes" reload:"apply"`
	BatchSize          int           `mapstructure:"batch_size" reload:"restart"`
	UserspaceSenders   []string      `mapstructure:"userspace_senders" reload:"apply"`
	HandshakeTimeout   time.Duration `mapstructure:"handshake_timeout" reload:"restart"`
	// ReaderPriority is the SCHED_FIFO priority of the reader thread
	// while a route enriches (1..99; 0: the process's own scheduling).
	ReaderPriority int      `mapstructure:"reader_priority" reload:"apply"`
	ProcEvents     []string `mapstructure:"proc_events" reload:"apply"`

	// Parsed by Validate.
	Trusted      []router.Pattern `mapstructure:"-" reload:"-"` // UserspaceSenders
	ProcEventSet router.EventSet  `mapstructure:"-" reload:"-"` // ProcEvents
}

// Ledger is the ledger: section, the settings of the sequence-gap ledger:
// the sequence tracker (seqtrack.Tracker) that checks every stream's
// sequence numbers and books each gap as lost messages
// (cnbridged_messages_lost_total, loss markers). It is not the sinks'
// accounting (sent, dropped, failed) nor a NATS sink's in-flight table.
type Ledger struct {
	ReorderWindow int `mapstructure:"reorder_window"`
	MaxStreams    int `mapstructure:"max_streams"`
}

// Metrics configures the Prometheus and health endpoint.
type Metrics struct {
	Listen string `mapstructure:"listen" reload:"restart"` // empty disables
}

// Tap configures the local live-view socket ("cnbridged tap"). It is a
// Unix socket, never the metrics listener: events carry command lines.
type Tap struct {
	Socket       string         `mapstructure:"socket"`        // empty disables
	Mode         sinks.FileMode `mapstructure:"mode"`          // octal string, e.g. "0600"
	ClientBuffer int            `mapstructure:"client_buffer"` // lines a slow client may hold before its lines are dropped
	QueueSize    int            `mapstructure:"queue_size"`    // records between the reader and the tap
}

// Sink is one named sink: its type, the queue keys every sink has, and
// its type's own typed config (Settings), which owns that type's keys,
// defaults and validation (internal/sinks/*_config.go).
type Sink struct {
	Type              string `mapstructure:"type"` // a name in sinks.Types
	sinks.QueueConfig `mapstructure:",squash"`
	Settings          sinks.TypeConfig `mapstructure:"-"`
}

// File returns a file sink's settings (nil for other types).
func (s *Sink) File() *sinks.FileConfig {
	if s == nil {
		return nil
	}
	c, _ := s.Settings.(*sinks.FileConfig)
	return c
}

// NATS returns a NATS sink's settings (nil for other types).
func (s *Sink) NATS() *sinks.NATSConfig {
	if s == nil {
		return nil
	}
	c, _ := s.Settings.(*sinks.NATSConfig)
	return c
}

// Route sends messages whose id matches Match to Sinks.
type Route struct {
	Match       string   `mapstructure:"match"`
	Events      []string `mapstructure:"events"`
	Sinks       []string `mapstructure:"sinks"`
	LossMarkers *bool    `mapstructure:"loss_markers"`
	Enrich      bool     `mapstructure:"enrich"`
	// Ancestors is how many ancestors enriched events carry (enrich only).
	Ancestors int `mapstructure:"ancestors"`
	// Threads: false drops thread forks and thread exits (default true).
	Threads *bool `mapstructure:"threads"`
	// Where is a CEL expression over the record (internal/where): the
	// route sends only the records it selects.
	Where string `mapstructure:"where"`
	// RateLimit holds back, and counts, what goes over a per-key rate
	// (internal/ratelimit); nil: no limit.
	RateLimit *ratelimit.Config `mapstructure:"rate_limit"`
	// Fold: "lifecycle" sends one record per process life (internal/fold)
	// instead of its fork, exec… and exit; "" (default) sends each.
	Fold string `mapstructure:"fold"`

	// Parsed by Validate.
	Pattern   router.Pattern  `mapstructure:"-"` // Match
	EventSet  router.EventSet `mapstructure:"-"` // Events
	HasEvents bool            `mapstructure:"-"` // Events given
	WhereExpr *where.Expr     `mapstructure:"-"` // Where compiled; nil without one
}

// ThreadsOn reports the route's threads setting (default on).
func (r Route) ThreadsOn() bool { return r.Threads == nil || *r.Threads }

// LossMarkersOn reports the route's loss_markers setting (default on).
func (r Route) LossMarkersOn() bool { return r.LossMarkers == nil || *r.LossMarkers }

// MaxAncestors bounds a route's ancestors.
const MaxAncestors = 64

// Defaults that other packages show or need.
const (
	DefaultReceiveBufferBytes = 8 << 20
	DefaultBatchSize          = 64
	DefaultShutdownTimeout    = 10 * time.Second
	// DefaultReaderPriority is listener.reader_priority's default: the
	// lowest realtime priority.
	DefaultReaderPriority = 1
	// DefaultCaptureBudget is process_table.capture_budget's default.
	DefaultCaptureBudget = time.Millisecond
	// MaxCaptureBudget bounds process_table.capture_budget: the reader
	// must stay ahead of the socket.
	MaxCaptureBudget = 100 * time.Millisecond
	// DefaultStateDir is the systemd unit's StateDirectory=cnbridged.
	DefaultStateDir = "/var/lib/cnbridged"
)

// fixed lists every key that has a default, so that environment variables
// can override it. Sinks and routes are maps and lists and have none.
func setDefaults(v *viper.Viper) {
	host, _ := os.Hostname()
	v.SetDefault("host", host)
	v.SetDefault("log.level", "info")
	v.SetDefault("log.format", "auto")
	v.SetDefault("listener.groups", []int{1})
	v.SetDefault("listener.receive_buffer_bytes", DefaultReceiveBufferBytes)
	v.SetDefault("listener.batch_size", DefaultBatchSize)
	v.SetDefault("listener.userspace_senders", []string{})
	v.SetDefault("listener.handshake_timeout", 2*time.Second)
	v.SetDefault("listener.proc_events", []string{"all"})
	v.SetDefault("ledger.reorder_window", 0)
	v.SetDefault("ledger.max_streams", 65536)
	v.SetDefault("metrics.listen", "127.0.0.1:9464")
	v.SetDefault("tap.socket", "/run/cnbridged/tap.sock")
	v.SetDefault("tap.mode", "0600")
	v.SetDefault("tap.client_buffer", 4096)
	v.SetDefault("tap.queue_size", 8192)
	v.SetDefault("enrich_max_cmdline_bytes", 4096)
	v.SetDefault("process_table.max_entries", 65536)
	v.SetDefault("process_table.exec_readers", 1)
	v.SetDefault("process_table.capture_budget", DefaultCaptureBudget)
	v.SetDefault("listener.reader_priority", DefaultReaderPriority)
	v.SetDefault("enrich_redact", []string{})
	v.SetDefault("enrich_queue_size", 1024)
	v.SetDefault("shutdown_timeout", DefaultShutdownTimeout)
	v.SetDefault("state_dir", DefaultStateDir)
	for _, k := range []string{"url", "user", "password", "token", "nkey_seed_file", "creds_file", "tls.ca_file", "tls.cert_file", "tls.key_file"} {
		v.SetDefault("query.nats."+k, "")
	}
	v.SetDefault("query.nats.tls.insecure_skip_verify", false)
	v.SetDefault("query.max_rows", query.DefaultMaxRows)
	v.SetDefault("query.max_per_second", query.DefaultMaxPerSecond)
	v.SetDefault("query.inventory.bucket", query.DefaultBucket)
	v.SetDefault("query.inventory.js_domain", "")
	v.SetDefault("query.inventory.interval", query.DefaultInterval)
	v.SetDefault("query.inventory.ttl", query.DefaultTTL)
}

// applyDefaults fills in the per-sink keys that viper cannot default
// because sinks are a map.
func (c *Config) applyDefaults() {
	for _, s := range c.Sinks {
		if s == nil || s.Settings == nil {
			continue
		}
		s.Settings.SetDefaults(c.daemonKeys())
		s.QueueConfig.SetDefaults(s.Settings.QueueDefaults())
	}
	for _, r := range c.Routes {
		if r.RateLimit != nil {
			r.RateLimit.SetDefaults()
		}
	}
	for i := range c.Requests {
		c.Requests[i].SetDefaults()
	}
}

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// SinkNames returns the sink names in sorted order (slot order).
func (c *Config) SinkNames() []string {
	names := make([]string, 0, len(c.Sinks))
	for n := range c.Sinks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// daemonKeys are the daemon-wide keys sink configs depend on.
func (c *Config) daemonKeys() sinks.DaemonKeys {
	return sinks.DaemonKeys{Host: c.Host, ShutdownTimeout: c.ShutdownTimeout}
}

func (s *Sink) validate(key, name string, d sinks.DaemonKeys) []error {
	if s == nil {
		return []error{fmt.Errorf("%s: empty sink", key)}
	}
	var errs []error
	if !sinkName.MatchString(name) {
		errs = append(errs, fmt.Errorf("%s: sink name must match %s", key, sinkName))
	}
	prefix := func(err error) {
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%s.%w", key, e))
		}
	}
	// Without a known type there are no type defaults (queue_size and
	// queue_max_bytes among them): the type is the one problem to name.
	switch {
	case s.Type == "":
		errs = append(errs, fmt.Errorf("%s.type: required: %s", key, typeList()))
	case s.Settings == nil:
		errs = append(errs, fmt.Errorf("%s.type: %q is not %s", key, s.Type, typeList()))
	default:
		prefix(s.QueueConfig.Validate())
		prefix(s.Settings.Validate(d))
	}
	return errs
}

// typeList is "file, nats, otlp or stdout": the sink types.
func typeList() string {
	t := sinks.TypeNames()
	return strings.Join(t[:len(t)-1], ", ") + " or " + t[len(t)-1]
}

// flatten lists the errors joined in err (nil: none).
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
