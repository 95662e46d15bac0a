// Package config loads and validates cnbridged's configuration: one typed
// struct, read from a YAML file by a viper instance, with every fixed key
// overridable as CNBRIDGED_<SECTION>_<KEY> and by --set key=value flags.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
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
	Sinks    map[string]*Sink `mapstructure:"sinks"`
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
	Socket       string `mapstructure:"socket"`        // empty disables
	Mode         string `mapstructure:"mode"`          // octal, e.g. "0600"
	ClientBuffer int    `mapstructure:"client_buffer"` // lines a slow client may hold before its lines are dropped
	QueueSize    int    `mapstructure:"queue_size"`    // records between the reader and the tap
}

// Sink is one named sink. Type selects which of the keys apply.
type Sink struct {
	Type string `mapstructure:"type"` // stdout, file, nats

	// Queue between the router and the sink.
	QueueSize     int    `mapstructure:"queue_size"`      // messages
	QueueMaxBytes int    `mapstructure:"queue_max_bytes"` // payload bytes
	WhenFull      string `mapstructure:"when_full"`       // drop_newest, block

	// file
	Path          string        `mapstructure:"path"`
	Mode          string        `mapstructure:"mode"` // octal, e.g. "0640"
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	MaxSizeBytes  int64         `mapstructure:"max_size_bytes"`
	MaxFiles      int           `mapstructure:"max_files"`
	OnError       string        `mapstructure:"on_error"` // drop, block, exit

	// nats
	URL                  string        `mapstructure:"url"`
	Subject              string        `mapstructure:"subject"`
	Format               string        `mapstructure:"format"` // nats: json, raw; stdout: json, text
	JetStream            bool          `mapstructure:"jetstream"`
	MaxInFlight          int           `mapstructure:"max_in_flight"`
	AckTimeout           time.Duration `mapstructure:"ack_timeout"`
	ReconnectBufferBytes int           `mapstructure:"reconnect_buffer_bytes"`
	DrainTimeout         time.Duration `mapstructure:"drain_timeout"`
	User                 string        `mapstructure:"user"`
	Password             string        `mapstructure:"password"`
	Token                string        `mapstructure:"token"`
	NkeySeedFile         string        `mapstructure:"nkey_seed_file"`
	CredsFile            string        `mapstructure:"creds_file"`
	TLS                  TLS           `mapstructure:"tls"`
	Stream               *Stream       `mapstructure:"stream"`
}

// TLS configures a NATS sink's transport security.
type TLS struct {
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// Enabled reports whether any TLS key is set.
func (t TLS) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// Stream is a JetStream stream the sink creates or updates at start.
type Stream struct {
	Name            string        `mapstructure:"name"`
	Subjects        []string      `mapstructure:"subjects"`
	Storage         string        `mapstructure:"storage"` // file, memory
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	Replicas        int           `mapstructure:"replicas"`
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
}

// MaxAncestors bounds a route's ancestors.
const MaxAncestors = 64

// Sink defaults.
const (
	DefaultQueueSize          = 65536
	DefaultQueueMaxBytes      = 64 << 20
	DefaultReceiveBufferBytes = 8 << 20
	DefaultBatchSize          = 64
	DefaultSubject            = "cn.{host}.{idx}.{val}"
	DefaultMaxInFlight        = 4096
	// DefaultNATSQueueSize and DefaultNATSQueueMaxBytes hold a 5 s outage
	// at 10 000 msg/s with room to spare: about 13 s, even when every
	// message arrives in a batch of its own (about 1 KiB of queue each).
	DefaultNATSQueueSize     = 131072
	DefaultNATSQueueMaxBytes = 128 << 20
	DefaultShutdownTimeout   = 10 * time.Second
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
}

// Builtin returns the sinks and routes used when no config file exists:
// every process event to stdout. For people at a terminal (text is true)
// that is the text format with enrichment; otherwise JSON lines.
func builtin(text bool) (map[string]*Sink, []Route) {
	if text {
		return map[string]*Sink{"stdout": {Type: "stdout", Format: "text"}},
			[]Route{{Match: "1.1", Sinks: []string{"stdout"}, Enrich: true}}
	}
	return map[string]*Sink{"stdout": {Type: "stdout"}},
		[]Route{{Match: "1.1", Sinks: []string{"stdout"}}}
}

// Output formats of stdout sinks (Options.Format).
const (
	FormatAuto = "" // the built-in default: text on a terminal, else JSON; config files: as written
	FormatJSON = "json"
	FormatText = "text"
)

// Options tells Load where to read from.
type Options struct {
	Path string   // "" means DefaultPath if it exists, else the built-in default
	Set  []string // key=value overrides, applied last
	// DefaultPath overrides DefaultPath (tests).
	DefaultPath string
	// Format, when set (json or text), is the format of every stdout
	// sink: the run command's --format flag.
	Format string
	// Terminal tells that stdout is a terminal: the built-in default then
	// writes text with enrichment instead of JSON lines.
	Terminal bool
}

// Load reads, decodes and validates the configuration. The returned error
// lists every problem found.
func Load(o Options) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("CNBRIDGED")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// An empty variable is a value: CNBRIDGED_METRICS_LISTEN= disables the
	// endpoint as metrics.listen: "" does.
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()
	setDefaults(v)

	path := o.Path
	if path == "" {
		def := o.DefaultPath
		if def == "" {
			def = DefaultPath
		}
		if _, err := os.Stat(def); err == nil {
			path = def
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config %s: %w", def, err)
		}
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	var errs []error
	for _, kv := range o.Set {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("--set %q: want key=value", kv))
			continue
		}
		v.Set(strings.ToLower(k), val)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// YAML reads an unquoted 0640 as the integer 416, which would become
	// mode "416": insist on a string so that the digits are the octal mode.
	for name := range v.GetStringMap("sinks") {
		key := "sinks." + name + ".mode"
		if m := v.Get(key); m != nil {
			if _, ok := m.(string); !ok {
				errs = append(errs, fmt.Errorf("%s: %v: quote the octal mode, as in mode: \"0640\"", key, m))
			}
		}
	}

	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		stringToSlice,
	)))
	if err != nil {
		errs = append(errs, fmt.Errorf("config %s: %w", displayPath(path), err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.Source = path
	switch o.Format {
	case FormatAuto, FormatJSON, FormatText:
	default:
		return nil, fmt.Errorf("--format %q: want json or text", o.Format)
	}
	if path == "" && c.Sinks == nil && c.Routes == nil {
		c.Sinks, c.Routes = builtin(o.Format == FormatText || (o.Format == FormatAuto && o.Terminal))
	}
	if o.Format != FormatAuto {
		for _, s := range c.Sinks {
			if s != nil && s.Type == "stdout" {
				s.Format = o.Format
			}
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// stringToSlice splits a comma-separated string ("1,3" from the environment
// or --set) into a list for any list key, numbers included, trimming spaces
// around each element. mapstructure's own hook only handles []string.
func stringToSlice(f, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice {
		return data, nil
	}
	s := reflect.ValueOf(data).String()
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

func displayPath(p string) string {
	if p == "" {
		return "(built-in)"
	}
	return p
}

// applyDefaults fills in the per-sink keys that viper cannot default
// because sinks are a map.
func (c *Config) applyDefaults() {
	for _, s := range c.Sinks {
		if s == nil {
			continue
		}
		if s.QueueSize == 0 {
			s.QueueSize = DefaultQueueSize
			if s.Type == "nats" {
				s.QueueSize = DefaultNATSQueueSize
			}
		}
		if s.QueueMaxBytes == 0 {
			s.QueueMaxBytes = DefaultQueueMaxBytes
			if s.Type == "nats" {
				s.QueueMaxBytes = DefaultNATSQueueMaxBytes
			}
		}
		if s.WhenFull == "" {
			s.WhenFull = "drop_newest"
		}
		switch s.Type {
		case "file":
			if s.Mode == "" {
				s.Mode = "0640"
			}
			if s.FlushInterval == 0 {
				s.FlushInterval = time.Second
			}
			if s.OnError == "" {
				s.OnError = "drop"
			}
			if s.MaxFiles == 0 {
				s.MaxFiles = 5
			}
		case "stdout":
			if s.Format == "" {
				s.Format = FormatJSON
			}
		case "nats":
			if s.Subject == "" {
				s.Subject = DefaultSubject
			}
			if s.Format == "" {
				s.Format = "json"
			}
			if s.MaxInFlight == 0 {
				s.MaxInFlight = DefaultMaxInFlight
			}
			if s.AckTimeout == 0 {
				s.AckTimeout = 5 * time.Second
			}
			if s.ReconnectBufferBytes == 0 {
				s.ReconnectBufferBytes = 8 << 20
			}
			if s.DrainTimeout == 0 {
				s.DrainTimeout = c.ShutdownTimeout // bounded by it anyway
			}
			if s.Stream != nil {
				if s.Stream.Storage == "" {
					s.Stream.Storage = "file"
				}
				if s.Stream.DuplicateWindow == 0 {
					s.Stream.DuplicateWindow = 2 * time.Minute
				}
				if s.Stream.Replicas == 0 {
					s.Stream.Replicas = 1
				}
			}
		}
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
	for i, p := range l.UserspaceSenders {
		if _, err := router.ParsePattern(p); err != nil {
			bad(fmt.Sprintf("listener.userspace_senders[%d]", i), "%v", err)
		}
	}
	if l.HandshakeTimeout <= 0 {
		bad("listener.handshake_timeout", "must be positive")
	}
	if _, err := router.ParseEvents(l.ProcEvents); err != nil {
		bad("listener.proc_events", "%v", err)
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
		if s := c.Sinks[name]; s != nil && s.DrainTimeout > c.ShutdownTimeout && c.ShutdownTimeout > 0 {
			bad("sinks."+name+".drain_timeout", "%s is longer than shutdown_timeout (%s), which bounds every sink's drain: lower it or raise shutdown_timeout",
				s.DrainTimeout, c.ShutdownTimeout)
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
		if m, err := strconv.ParseUint(c.Tap.Mode, 8, 32); err != nil || m > 0o777 {
			bad("tap.mode", "%q: want an octal file mode such as 0600", c.Tap.Mode)
		}
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
		errs = append(errs, c.Sinks[name].validate("sinks."+name, name)...)
	}

	if len(c.Routes) == 0 {
		bad("routes", "no routes: nothing would be published")
	}
	used := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if _, err := router.ParsePattern(r.Match); err != nil {
			bad(key+".match", "%v", err)
		}
		if len(r.Events) > 0 {
			if _, err := router.ParseEvents(r.Events); err != nil {
				bad(key+".events", "%v", err)
			}
		}
		if len(r.Sinks) == 0 {
			bad(key+".sinks", "no sinks named")
		}
		if r.Enrich {
			if p, err := router.ParsePattern(r.Match); err == nil && !p.Matches(cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}) {
				bad(key+".enrich", "applies to process events only, and match %q never matches 1.1", r.Match)
			}
		}
		switch {
		case r.Ancestors < 0 || r.Ancestors > MaxAncestors:
			bad(key+".ancestors", "%d is outside 0..%d", r.Ancestors, MaxAncestors)
		case r.Ancestors > 0 && !r.Enrich:
			bad(key+".ancestors", "needs enrich: true")
		}
		if !r.ThreadsOn() {
			if p, err := router.ParsePattern(r.Match); err == nil && !p.Matches(cnmsg.ID{Idx: cnmsg.IdxProc, Val: cnmsg.ValProc}) {
				bad(key+".threads", "applies to process events only, and match %q never matches 1.1", r.Match)
			}
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
		}
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
	var errs []error
	bad := func(k, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", key, k, fmt.Sprintf(format, a...)))
	}
	if s == nil {
		return []error{fmt.Errorf("%s: empty sink", key)}
	}
	if !sinkName.MatchString(name) {
		errs = append(errs, fmt.Errorf("%s: sink name must match %s", key, sinkName))
	}
	if s.QueueSize < 1 {
		bad("queue_size", "must be at least 1")
	}
	if s.QueueMaxBytes < 64<<10 {
		bad("queue_max_bytes", "must be at least 65536")
	}
	switch s.WhenFull {
	case "drop_newest", "block":
	default:
		bad("when_full", "%q is not drop_newest or block", s.WhenFull)
	}
	only := func(k string, set bool, typ string) {
		if set {
			bad(k, "applies only to sinks of type %s", typ)
		}
	}
	fileKeys := func() {
		only("path", s.Path != "", "file")
		only("mode", s.Mode != "", "file")
		only("flush_interval", s.FlushInterval != 0, "file")
		only("max_size_bytes", s.MaxSizeBytes != 0, "file")
		only("max_files", s.MaxFiles != 0, "file")
		only("on_error", s.OnError != "", "file")
	}
	natsKeys := func() {
		only("url", s.URL != "", "nats")
		only("subject", s.Subject != "", "nats")
		only("jetstream", s.JetStream, "nats")
		only("max_in_flight", s.MaxInFlight != 0, "nats")
		only("ack_timeout", s.AckTimeout != 0, "nats")
		only("reconnect_buffer_bytes", s.ReconnectBufferBytes != 0, "nats")
		only("drain_timeout", s.DrainTimeout != 0, "nats")
		only("stream", s.Stream != nil, "nats")
		only("user", s.User != "", "nats")
		only("password", s.Password != "", "nats")
		only("token", s.Token != "", "nats")
		only("creds_file", s.CredsFile != "", "nats")
		only("nkey_seed_file", s.NkeySeedFile != "", "nats")
		only("tls", s.TLS.Enabled(), "nats")
	}
	switch s.Type {
	case "stdout":
		fileKeys()
		natsKeys()
		if s.Format != FormatJSON && s.Format != FormatText {
			bad("format", "%q is not json or text", s.Format)
		}
	case "file":
		natsKeys()
		only("format", s.Format != "", "nats or stdout")
		if s.Path == "" {
			bad("path", "required for a file sink")
		}
		if m, err := strconv.ParseUint(s.Mode, 8, 32); err != nil || m > 0o777 {
			bad("mode", "%q is not an octal file mode", s.Mode)
		}
		if s.FlushInterval <= 0 {
			bad("flush_interval", "must be positive")
		}
		if s.MaxSizeBytes < 0 {
			bad("max_size_bytes", "must not be negative")
		}
		if s.MaxFiles < 1 {
			bad("max_files", "must be at least 1")
		}
		switch s.OnError {
		case "drop", "block", "exit":
		default:
			bad("on_error", "%q is not drop, block or exit", s.OnError)
		}
	case "nats":
		fileKeys()
		if s.URL == "" {
			bad("url", "required for a nats sink")
		}
		if err := checkSubjectTemplate(s.Subject); err != nil {
			bad("subject", "%v", err)
		}
		if s.Format != "json" && s.Format != "raw" {
			bad("format", "%q is not json or raw", s.Format)
		}
		if s.MaxInFlight < 1 {
			bad("max_in_flight", "must be at least 1")
		}
		if s.AckTimeout <= 0 {
			bad("ack_timeout", "must be positive")
		}
		if s.ReconnectBufferBytes < 0 {
			bad("reconnect_buffer_bytes", "must not be negative")
		}
		auth := 0
		for _, set := range []bool{s.User != "" || s.Password != "", s.Token != "", s.NkeySeedFile != "", s.CredsFile != ""} {
			if set {
				auth++
			}
		}
		if auth > 1 {
			bad("user", "set only one of user/password, token, nkey_seed_file, creds_file")
		}
		if (s.User == "") != (s.Password == "") {
			bad("password", "user and password go together")
		}
		if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
			bad("tls.cert_file", "cert_file and key_file go together")
		}
		if s.Stream != nil {
			if !s.JetStream {
				bad("stream", "needs jetstream: true")
			}
			if s.Stream.Name == "" {
				bad("stream.name", "required")
			}
			if s.Stream.Storage != "file" && s.Stream.Storage != "memory" {
				bad("stream.storage", "%q is not file or memory", s.Stream.Storage)
			}
		}
	case "":
		bad("type", "required: stdout, file or nats")
	default:
		bad("type", "%q is not stdout, file or nats", s.Type)
	}
	return errs
}

// SubjectFields are the names a NATS subject template may use.
var subjectFields = []string{"host", "idx", "val", "event", "cpu", "container"}

func checkSubjectTemplate(t string) error {
	if t == "" {
		return errors.New("empty")
	}
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("%q: unclosed {", t)
		}
		f := rest[i+1 : i+j]
		if !slices.Contains(subjectFields, f) {
			return fmt.Errorf("%q: unknown field {%s}; known: %s", t, f, strings.Join(subjectFields, ", "))
		}
		rest = rest[i+j+1:]
	}
	if strings.ContainsAny(t, " \t\r\n") || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || strings.Contains(t, "..") {
		return fmt.Errorf("%q is not a valid subject", t)
	}
	for tok := range strings.SplitSeq(t, ".") {
		if tok == "*" || tok == ">" {
			return fmt.Errorf("%q: wildcard %s in a publish subject", t, tok)
		}
	}
	return nil
}
