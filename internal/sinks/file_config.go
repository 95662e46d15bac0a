package sinks

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cnbridged/cnbridged/internal/schema"
)

// FileConfig is a file sink's configuration: the keys of its section of
// the config file, decoded, defaulted and validated here, and what NewFile
// takes. A new key is a field here, its default in SetDefaults and its
// check in Validate.
type FileConfig struct {
	Path          string        `mapstructure:"path"`
	Mode          FileMode      `mapstructure:"mode"` // octal string, e.g. "0640"
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	MaxSizeBytes  int64         `mapstructure:"max_size_bytes"` // rotate when a write would pass it; 0 never rotates
	MaxFiles      int           `mapstructure:"max_files"`      // rotated files kept: path.1 … path.N
	OnError       OnError       `mapstructure:"on_error"`       // drop, block, exit
	// SchemaConfig: the document each line holds (the native line, or a
	// schema's).
	SchemaConfig `mapstructure:",squash"`

	// Not keys of the config file: set by whoever builds the sink (New
	// from its Env; tests).

	// Product is this build, named in schema documents.
	Product schema.Product `mapstructure:"-"`
	// RetryInterval is the pause between attempts under OnErrorBlock.
	RetryInterval time.Duration `mapstructure:"-"`
	// Takeover is a sink of this daemon that writes Path now and that
	// this one replaces (a reload changed or renamed it): the new sink
	// shares its open file, and so its lock, instead of being refused
	// by it. Nil for none.
	Takeover *File `mapstructure:"-"`
}

// File sink defaults.
const (
	DefaultFileMode          FileMode = 0o640
	DefaultFileFlushInterval          = time.Second
	DefaultFileMaxFiles               = 5
	defaultFileRetryInterval          = 500 * time.Millisecond
)

// SetDefaults implements TypeConfig.
func (c *FileConfig) SetDefaults(DaemonKeys) {
	if c.Mode == 0 {
		c.Mode = DefaultFileMode
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFileFlushInterval
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultFileMaxFiles
	}
}

// Validate implements TypeConfig.
func (c *FileConfig) Validate(DaemonKeys) error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required for a file sink"))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("flush_interval: %s: must be positive", c.FlushInterval))
	}
	if c.MaxSizeBytes < 0 {
		errs = append(errs, fmt.Errorf("max_size_bytes: %d: must not be negative", c.MaxSizeBytes))
	}
	if c.MaxFiles < 1 {
		errs = append(errs, fmt.Errorf("max_files: %d: must be at least 1", c.MaxFiles))
	}
	if err := c.validateWith(true, ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// QueueDefaults implements TypeConfig.
func (c *FileConfig) QueueDefaults() (int, int) { return DefaultQueueSize, DefaultQueueMaxBytes }

// New implements TypeConfig.
func (c *FileConfig) New(env Env) (Sink, error) {
	cfg := *c
	cfg.Product = env.Product
	for _, s := range env.Running {
		if f, ok := s.(*File); ok && f.cfg.Path == c.Path {
			cfg.Takeover = f // a reload's sink for the same path takes its file over
		}
	}
	return NewFile(cfg, env.Encoder, env.Counters, env.Log)
}

// FlushEvery implements Flusher: flush_interval.
func (c *FileConfig) FlushEvery() time.Duration { return c.FlushInterval }

// FileMode is a file's permission bits, given in the config as an octal
// string ("0640").
type FileMode uint32

// UnmarshalText parses an octal mode of at most 0777.
func (m *FileMode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("%q is not an octal file mode such as \"0640\"", b)
	}
	*m = FileMode(v)
	return nil
}

// String returns the mode in octal.
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// UnmarshalText parses on_error.
func (o *OnError) UnmarshalText(b []byte) error {
	v, err := ParseOnError(string(b))
	if err != nil || len(b) == 0 {
		return fmt.Errorf("%q is not %s", b, onErrorAccepted)
	}
	*o = v
	return nil
}

// String returns the config value.
func (o OnError) String() string {
	switch o {
	case OnErrorBlock:
		return "block"
	case OnErrorExit:
		return "exit"
	}
	return "drop"
}
