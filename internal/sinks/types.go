package sinks

import (
	"context"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/schema"
)

// Types is the table of sink types: a type's name (the "type" key) and
// a function returning its empty config. The config decodes the type's
// keys (its mapstructure tags), defaults and validates them, builds the
// sink (New) and, optionally, checks its destination (Prober). Config
// decoding, validation, the daemon and cnbridged check all read this
// table: a new sink type is one entry here.
func Types() map[string]func() TypeConfig {
	return map[string]func() TypeConfig{
		"stdout": func() TypeConfig { return &StdoutConfig{} },
		"file":   func() TypeConfig { return &FileSinkConfig{} },
		"nats":   func() TypeConfig { return &NATSConfig{} },
		"otlp":   func() TypeConfig { return &OTLPSinkConfig{} },
	}
}

// TypeNames returns the sink types' names, sorted.
func TypeNames() []string {
	var names []string
	for n := range Types() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// TypeConfig is a sink type's own section of a sink's config: its keys,
// defaults, validation and constructor. The config package decodes a
// sink's keys into its QueueConfig and its type's TypeConfig.
type TypeConfig interface {
	// SetDefaults fills in the keys left out.
	SetDefaults(d DaemonKeys)
	// Validate reports every problem, each error starting with its key
	// relative to the sink ("path: …").
	Validate(d DaemonKeys) error
	// QueueDefaults are the queue_size and queue_max_bytes this type
	// defaults to.
	QueueDefaults() (size, maxBytes int)
	// New builds the sink; Validate has passed.
	New(env Env) (Sink, error)
}

// DaemonKeys are the daemon-wide keys a sink's config may depend on.
type DaemonKeys struct {
	Host            string        // host: what {host} and Cn-Host say
	ShutdownTimeout time.Duration // shutdown_timeout: bounds every sink's drain
}

// Env is what the daemon gives every sink it builds besides its config:
// who the sink is and what it shares with the others.
type Env struct {
	Name     string // the sink's name
	Host     string // the host key
	Encoder  *event.Encoder
	Counters *Counters
	Log      *zap.Logger
	// Context ends the sinks' waits: the daemon cancels it when draining
	// runs out of time.
	Context context.Context
	// Stdout is the daemon's standard output; Text formats it for people
	// (format: text).
	Stdout io.Writer
	Text   event.TextFormatter
	// Product is this build, named in schema documents (OCSF
	// metadata.product, OTLP service.version).
	Product schema.Product
	// NATSMetrics and OTLPMetrics are the metrics every NATS or OTLP sink
	// reports in.
	NATSMetrics *NATSMetrics
	OTLPMetrics *OTLPMetrics
	// Running are the sinks the daemon runs now: a reload's new or
	// changed sink may take over what one of them holds (a file sink the
	// file, and its lock, of the sink writing the same path).
	Running []Sink
}

// Flusher is implemented by configs whose sink wants its runner to call
// Flush at least this often (zero: the runner's default).
type Flusher interface {
	FlushEvery() time.Duration
}

// Probe is one finding of a check of a sink's destination before the
// daemon runs (cnbridged check): a result (OK, Detail, Advice), or a path
// for the check to try (Path, Try).
type Probe struct {
	OK     bool
	Detail string // what was found, or what is wrong; with Try: what success means
	Advice string // what to do about a failure; with Try: the config change that avoids the path
	// Try does to Path what the sink does when it starts (creating it and
	// the directories above it). The check runs it, removes what it
	// created, and words the advice from the error and the path.
	Path string
	Try  func() error
}

// Prober is implemented by configs whose destination can be checked
// before the sink runs: a file that can be created, a server that lets the
// sink in. Probe reports each finding; name is the sink's.
type Prober interface {
	Probe(ctx context.Context, name string) []Probe
}
