// Package config loads and validates cnbridged's configuration: one typed
// struct, read from a YAML file by a viper instance, with every fixed key
// overridable as CNBRIDGED_<SECTION>_<KEY> and by --set key=value flags.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// DefaultPath is read when no --config is given and the file exists.
const DefaultPath = "/etc/cnbridged/cnbridged.yaml"

// Config is the whole configuration.
type Config struct {
	Host     string           `mapstructure:"host"`
	Log      Log              `mapstructure:"log"`
	Listener Listener         `mapstructure:"listener"`
	Ledger   Ledger           `mapstructure:"ledger"`
	Metrics  Metrics          `mapstructure:"metrics"`
	Tap      Tap              `mapstructure:"tap"`
	Sinks    map[string]*Sink `mapstructure:"-"` // decoded per type by Load
	Routes   []Route          `mapstructure:"routes"`
	Requests []Request        `mapstructure:"requests"`

	// Process enrichment (routes with enrich: true).
	EnrichMaxCmdlineBytes int `mapstructure:"enrich_max_cmdline_bytes"`
	EnrichQueueSize       int `mapstructure:"enrich_queue_size"`
	// EnrichRedact are RE2 patterns: in every captured argument, each
	// pattern's first capture group is replaced by "*****".
	EnrichRedact []string     `mapstructure:"enrich_redact"`
	ProcessTable ProcessTable `mapstructure:"process_table"`

	// ShutdownTimeout bounds a requested stop: reading what the socket
	// still holds and draining every sink.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// StateDir holds the restart trace (statefile); "" disables it.
	StateDir string `mapstructure:"state_dir"`

	// Source is the file the config was read from ("" for the built-in
	// default). It is not a config key.
	Source string `mapstructure:"-"`
}

// ProcessTable bounds the process table kept for enrichment.
type ProcessTable struct {
	MaxEntries int `mapstructure:"max_entries"` // processes plus threads
}

// Log configures the daemon's own logging.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // auto (console on a terminal, else json), json, console
}

// Listener configures the connector socket.
type Listener struct {
	Groups             []int         `mapstructure:"groups"`
	ReceiveBufferBytes int           `mapstructure:"receive_buffer_bytes"`
	BatchSize          int           `mapstructure:"batch_size"`
	UserspaceSenders   []string      `mapstructure:"userspace_senders"`
	HandshakeTimeout   time.Duration `mapstructure:"handshake_timeout"`
	ProcEvents         []string      `mapstructure:"proc_events"`

	// Parsed by Validate.
	Trusted      []router.Pattern `mapstructure:"-"` // UserspaceSenders
	ProcEventSet router.EventSet  `mapstructure:"-"` // ProcEvents
}

// Ledger configures sequence-gap accounting.
type Ledger struct {
	ReorderWindow int `mapstructure:"reorder_window"`
	MaxStreams    int `mapstructure:"max_streams"`
}

// Metrics configures the Prometheus and health endpoint.
type Metrics struct {
	Listen string `mapstructure:"listen"` // empty disables
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
	Type              string `mapstructure:"type"` // stdout, file, nats
	sinks.QueueConfig `mapstructure:",squash"`
	Settings          sinks.TypeConfig `mapstructure:"-"`
}

// File returns a file sink's settings (nil for other types).
func (s *Sink) File() *sinks.FileSinkConfig {
	if s == nil {
		return nil
	}
	c, _ := s.Settings.(*sinks.FileSinkConfig)
	return c
}

// NATS returns a NATS sink's settings (nil for other types).
func (s *Sink) NATS() *sinks.NATSSinkConfig {
	if s == nil {
		return nil
	}
	c, _ := s.Settings.(*sinks.NATSSinkConfig)
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

	// Parsed by Validate.
	Pattern   router.Pattern  `mapstructure:"-"` // Match
	EventSet  router.EventSet `mapstructure:"-"` // Events
	HasEvents bool            `mapstructure:"-"` // Events given
}

// ThreadsOn reports the route's threads setting (default on).
func (r Route) ThreadsOn() bool { return r.Threads == nil || *r.Threads }

// LossMarkersOn reports the route's loss_markers setting (default on).
func (r Route) LossMarkersOn() bool { return r.LossMarkers == nil || *r.LossMarkers }

// Request maps a NATS subject to a connector id that may be sent to.
type Request struct {
	Subject   string        `mapstructure:"subject"`
	ID        string        `mapstructure:"id"`
	Group     int           `mapstructure:"group"`
	Timeout   time.Duration `mapstructure:"timeout"`
	Sink      string        `mapstructure:"sink"` // the nats sink whose connection serves requests
	Format    string        `mapstructure:"format"`
	RateLimit float64       `mapstructure:"rate_limit"` // requests per second
	Burst     int           `mapstructure:"burst"`
	Users     []string      `mapstructure:"users"`

	// Parsed by Validate.
	CnID        cnmsg.ID `mapstructure:"-"` // ID
	NATSSubject string   `mapstructure:"-"` // Subject with {host} filled in
}

// MaxAncestors bounds a route's ancestors.
const MaxAncestors = 64

// Defaults that other packages show or need.
const (
	DefaultReceiveBufferBytes = 8 << 20
	DefaultBatchSize          = 64
	DefaultShutdownTimeout    = 10 * time.Second
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
	v.SetDefault("enrich_redact", []string{})
	v.SetDefault("enrich_queue_size", 1024)
	v.SetDefault("shutdown_timeout", DefaultShutdownTimeout)
	v.SetDefault("state_dir", DefaultStateDir)
}

// applyDefaults fills in the per-sink keys that viper cannot default
// because sinks are a map.
func (c *Config) applyDefaults() {
	for _, s := range c.Sinks {
		if s == nil || s.Settings == nil {
			continue
		}
		if n := s.NATS(); n != nil && n.DrainTimeout == 0 {
			n.DrainTimeout = c.ShutdownTimeout // bounded by it anyway
		}
		s.Settings.SetDefaults()
		s.QueueConfig.SetDefaults(s.Settings.QueueDefaults())
	}
	for i := range c.Requests {
		r := &c.Requests[i]
		if r.Timeout == 0 {
			r.Timeout = 2 * time.Second
		}
		if r.Format == "" {
			r.Format = "raw"
		}
		if r.RateLimit == 0 {
			r.RateLimit = 10
		}
		if r.Burst == 0 {
			r.Burst = 10
		}
	}
}

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Validate reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		bad("log.format", "%q is not one of auto, json, console", c.Log.Format)
	}
	if c.Host == "" {
		bad("host", "empty")
	}
	l := c.Listener
	if len(l.Groups) == 0 {
		bad("listener.groups", "no groups: join at least one of 1..32")
	}
	seen := map[int]bool{}
	for i, g := range l.Groups {
		if g < 1 || g > 32 {
			bad(fmt.Sprintf("listener.groups[%d]", i), "group %d is outside 1..32", g)
		}
		if seen[g] {
			bad(fmt.Sprintf("listener.groups[%d]", i), "group %d listed twice", g)
		}
		seen[g] = true
	}
	if l.ReceiveBufferBytes < 64<<10 || l.ReceiveBufferBytes > 1<<30 {
		bad("listener.receive_buffer_bytes", "%d is outside 65536..1073741824", l.ReceiveBufferBytes)
	}
	if l.BatchSize < 1 || l.BatchSize > 1024 {
		bad("listener.batch_size", "%d is outside 1..1024", l.BatchSize)
	}
	c.Listener.Trusted = make([]router.Pattern, 0, len(l.UserspaceSenders))
	for i, p := range l.UserspaceSenders {
		pat, err := router.ParsePattern(p)
		if err != nil {
			bad(fmt.Sprintf("listener.userspace_senders[%d]", i), "%v", err)
		}
		c.Listener.Trusted = append(c.Listener.Trusted, pat)
	}
	if l.HandshakeTimeout <= 0 {
		bad("listener.handshake_timeout", "must be positive")
	}
	if set, err := router.ParseEvents(l.ProcEvents); err != nil {
		bad("listener.proc_events", "%v", err)
	} else {
		c.Listener.ProcEventSet = set
	}
	if c.EnrichMaxCmdlineBytes < 1 || c.EnrichMaxCmdlineBytes > 1<<20 {
		bad("enrich_max_cmdline_bytes", "%d is outside 1..1048576", c.EnrichMaxCmdlineBytes)
	}
	if c.ProcessTable.MaxEntries < 1 {
		bad("process_table.max_entries", "must be at least 1")
	}
	for i, pat := range c.EnrichRedact {
		key := fmt.Sprintf("enrich_redact[%d]", i)
		if re, err := regexp.Compile(pat); err != nil {
			bad(key, "%q is not an RE2 pattern: %v", pat, err)
		} else if re.NumSubexp() < 1 {
			bad(key, "%q has no capture group: the first group is what is replaced by *****", pat)
		}
	}
	if c.EnrichQueueSize < 1 {
		bad("enrich_queue_size", "must be at least 1")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	for _, name := range c.SinkNames() {
		if n := c.Sinks[name].NATS(); n != nil && n.DrainTimeout > c.ShutdownTimeout && c.ShutdownTimeout > 0 {
			bad("sinks."+name+".drain_timeout", "%s is longer than shutdown_timeout (%s), which bounds every sink's drain: lower it or raise shutdown_timeout",
				n.DrainTimeout, c.ShutdownTimeout)
		}
	}
	if c.Ledger.ReorderWindow < 0 || c.Ledger.ReorderWindow > 64 {
		bad("ledger.reorder_window", "%d is outside 0..64", c.Ledger.ReorderWindow)
	}
	if c.Ledger.MaxStreams < 1 {
		bad("ledger.max_streams", "must be at least 1")
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q: want host:port", c.Metrics.Listen)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			bad("metrics.listen", "%q: bad port", c.Metrics.Listen)
		}
	}
	if c.Tap.Socket != "" {
		if c.Tap.ClientBuffer < 1 {
			bad("tap.client_buffer", "must be at least 1")
		}
		if c.Tap.QueueSize < 1 {
			bad("tap.queue_size", "must be at least 1")
		}
	}

	if len(c.Sinks) == 0 {
		bad("sinks", "no sinks defined")
	}
	if len(c.Sinks) > router.MaxSinks {
		bad("sinks", "%d sinks; at most %d", len(c.Sinks), router.MaxSinks)
	}
	for _, name := range c.SinkNames() {
		serrs := c.Sinks[name].validate("sinks."+name, name)
		errs = append(errs, serrs...)
		if n := c.Sinks[name].NATS(); n != nil && len(serrs) == 0 {
			if err := n.Resolve(c.Host); err != nil {
				bad("sinks."+name+".subject", "%v", err)
			}
		}
	}

	if len(c.Routes) == 0 {
		bad("routes", "no routes: nothing would be published")
	}
	used := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		pat, err := router.ParsePattern(r.Match)
		if err != nil {
			bad(key+".match", "%v", err)
		} else {
			c.Routes[i].Pattern = pat
		}
		neverProc := err == nil && !pat.Matches(cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc})
		if len(r.Events) > 0 {
			if set, err := router.ParseEvents(r.Events); err != nil {
				bad(key+".events", "%v", err)
			} else {
				c.Routes[i].EventSet, c.Routes[i].HasEvents = set, true
			}
		}
		if len(r.Sinks) == 0 {
			bad(key+".sinks", "no sinks named")
		}
		if r.Enrich && neverProc {
			bad(key+".enrich", "applies to process events only, and match %q never matches 1.1", r.Match)
		}
		switch {
		case r.Ancestors < 0 || r.Ancestors > MaxAncestors:
			bad(key+".ancestors", "%d is outside 0..%d", r.Ancestors, MaxAncestors)
		case r.Ancestors > 0 && !r.Enrich:
			bad(key+".ancestors", "needs enrich: true")
		}
		if !r.ThreadsOn() && neverProc {
			bad(key+".threads", "applies to process events only, and match %q never matches 1.1", r.Match)
		}
		for j, s := range r.Sinks {
			if _, ok := c.Sinks[s]; !ok {
				bad(fmt.Sprintf("%s.sinks[%d]", key, j), "no sink named %q", s)
			}
			used[s] = true
		}
	}
	for i, r := range c.Requests {
		key := fmt.Sprintf("requests[%d]", i)
		if r.Subject == "" {
			bad(key+".subject", "empty")
		}
		if p, err := router.ParsePattern(r.ID); err != nil || p.AnyIdx || p.AnyVal {
			bad(key+".id", "%q: want an exact idx.val", r.ID)
		} else {
			c.Requests[i].CnID = cnmsg.ID{Idx: p.Idx, Val: p.Val}
		}
		c.Requests[i].NATSSubject = strings.ReplaceAll(r.Subject, "{host}", sinks.SubjectToken(c.Host))
		if r.Group < 1 || r.Group > 32 {
			bad(key+".group", "%d is outside 1..32", r.Group)
		}
		if r.Timeout <= 0 {
			bad(key+".timeout", "must be positive")
		}
		if s := c.Sinks[r.Sink]; s == nil || s.Type != "nats" {
			bad(key+".sink", "%q is not a nats sink", r.Sink)
		}
		if r.Format != "raw" && r.Format != "json" {
			bad(key+".format", "%q is not raw or json", r.Format)
		}
		if r.RateLimit < 0 || r.Burst < 1 {
			bad(key+".rate_limit", "rate must be >= 0 and burst >= 1")
		}
	}
	return errors.Join(errs...)
}

// SinkNames returns the sink names in sorted order (slot order).
func (c *Config) SinkNames() []string {
	names := make([]string, 0, len(c.Sinks))
	for n := range c.Sinks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Sink) validate(key, name string) []error {
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
	prefix(s.QueueConfig.Validate())
	switch {
	case s.Type == "":
		errs = append(errs, fmt.Errorf("%s.type: required: %s", key, typeList()))
	case s.Settings == nil:
		errs = append(errs, fmt.Errorf("%s.type: %q is not %s", key, s.Type, typeList()))
	default:
		prefix(s.Settings.Validate())
	}
	return errs
}

// typeList is "stdout, file or nats".
func typeList() string {
	t := sinks.Types()
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
