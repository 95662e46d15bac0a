package sinks

import (
	"errors"
	"fmt"
)

// StdoutConfig is a stdout sink's own config.
type StdoutConfig struct {
	Format       string `mapstructure:"format"` // json (default), text
	SchemaConfig `mapstructure:",squash"`
}

// Stdout sink formats.
const (
	FormatJSON = "json" // one JSON object per line
	FormatText = "text" // aligned columns for people
)

// SetDefaults implements TypeConfig.
func (c *StdoutConfig) SetDefaults() {
	if c.Format == "" {
		c.Format = FormatJSON
	}
}

// Validate implements TypeConfig.
func (c *StdoutConfig) Validate() error {
	var errs []error
	if c.Format != FormatJSON && c.Format != FormatText {
		errs = append(errs, fmt.Errorf("format: %q is not json or text", c.Format))
	}
	if err := c.validateWith(c.Format != FormatText, "this stdout sink has format: text (set format: json)"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// QueueDefaults implements TypeConfig.
func (c *StdoutConfig) QueueDefaults() (int, int) { return DefaultQueueSize, DefaultQueueMaxBytes }
