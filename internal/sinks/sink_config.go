package sinks

import (
	"errors"
	"fmt"
)

// QueueConfig holds the keys every sink has: the bounded queue between the
// router and the sink.
type QueueConfig struct {
	QueueSize     int      `mapstructure:"queue_size"`      // records
	QueueMaxBytes int      `mapstructure:"queue_max_bytes"` // payload bytes
	WhenFull      WhenFull `mapstructure:"when_full"`       // drop_newest, block
}

// Queue defaults: most sinks, and NATS sinks (which hold an outage).
const (
	DefaultQueueSize      = 65536
	DefaultQueueMaxBytes  = 64 << 20
	minQueueMaxBytes      = 64 << 10
	whenFullAccepted      = "drop_newest or block"
	onErrorAccepted       = "drop, block or exit"
	natsFormatAccepted    = "json or raw"
	streamStorageAccepted = "file or memory"
)

// SetDefaults fills the zero keys with size and maxBytes.
func (q *QueueConfig) SetDefaults(size, maxBytes int) {
	if q.QueueSize == 0 {
		q.QueueSize = size
	}
	if q.QueueMaxBytes == 0 {
		q.QueueMaxBytes = maxBytes
	}
}

// Validate reports every problem, each starting with its key.
func (q QueueConfig) Validate() error {
	var errs []error
	if q.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue_size: %d: must be at least 1", q.QueueSize))
	}
	if q.QueueMaxBytes < minQueueMaxBytes {
		errs = append(errs, fmt.Errorf("queue_max_bytes: %d: must be at least %d", q.QueueMaxBytes, minQueueMaxBytes))
	}
	return errors.Join(errs...)
}

// UnmarshalText parses when_full.
func (w *WhenFull) UnmarshalText(b []byte) error {
	v, err := ParseWhenFull(string(b))
	if err != nil {
		return fmt.Errorf("%q is not %s", b, whenFullAccepted)
	}
	*w = v
	return nil
}

// String returns the config value.
func (w WhenFull) String() string {
	if w == Block {
		return "block"
	}
	return "drop_newest"
}

// MarshalText returns the config value.
func (w WhenFull) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// TypeConfig is a sink type's own section of a sink's config: its keys,
// defaults and validation. The config package decodes a sink's keys into
// its QueueConfig and its type's TypeConfig.
type TypeConfig interface {
	// SetDefaults fills in the keys left out.
	SetDefaults()
	// Validate reports every problem, each error starting with its key
	// relative to the sink ("path: …").
	Validate() error
	// QueueDefaults are the queue_size and queue_max_bytes this type
	// defaults to.
	QueueDefaults() (size, maxBytes int)
}

// NewTypeConfig returns an empty config for the sink type typ, or false
// for an unknown type. Types lists the known ones.
func NewTypeConfig(typ string) (TypeConfig, bool) {
	switch typ {
	case "stdout":
		return &StdoutConfig{}, true
	case "file":
		return &FileSinkConfig{}, true
	case "nats":
		return &NATSSinkConfig{}, true
	case "otlp":
		return &OTLPSinkConfig{}, true
	}
	return nil, false
}

// Types are the sink types, in the order error messages list them.
func Types() []string { return []string{"stdout", "file", "nats", "otlp"} }
