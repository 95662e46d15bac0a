package sinks

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// FileSinkConfig is a file sink's own config, as the config file gives it.
type FileSinkConfig struct {
	Path          string        `mapstructure:"path"`
	Mode          FileMode      `mapstructure:"mode"` // octal string, e.g. "0640"
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	MaxSizeBytes  int64         `mapstructure:"max_size_bytes"`
	MaxFiles      int           `mapstructure:"max_files"`
	OnError       OnError       `mapstructure:"on_error"` // drop, block, exit
	SchemaConfig  `mapstructure:",squash"`
}

// File sink defaults.
const (
	DefaultFileMode          FileMode = 0o640
	DefaultFileFlushInterval          = time.Second
	DefaultFileMaxFiles               = 5
)

// SetDefaults implements TypeConfig.
func (c *FileSinkConfig) SetDefaults() {
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
func (c *FileSinkConfig) Validate() error {
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
func (c *FileSinkConfig) QueueDefaults() (int, int) { return DefaultQueueSize, DefaultQueueMaxBytes }

// FileConfig returns what NewFile takes.
func (c *FileSinkConfig) FileConfig() FileConfig {
	return FileConfig{
		Path:         c.Path,
		Mode:         os.FileMode(c.Mode),
		MaxSizeBytes: c.MaxSizeBytes,
		MaxFiles:     c.MaxFiles,
		OnError:      c.OnError,
		Body:         Body{Schema: c.Schema},
	}
}

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
