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
func (c *StdoutConfig) SetDefaults(DaemonKeys) {
	if c.Format == "" {
		c.Format = FormatJSON
	}
}

// Validate implements TypeConfig.
func (c *StdoutConfig) Validate(DaemonKeys) error {
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

// New implements TypeConfig: JSON lines, or (format text) rows for people
// as env.Text formats them.
func (c *StdoutConfig) New(env Env) (Sink, error) {
	if c.Format == FormatText {
		tf := env.Text
		return NewTextStream(env.Stdout, env.Encoder, &tf, env.Counters), nil
	}
	return NewStreamBody(env.Stdout, env.Encoder, Body{Schema: c.Schema, Product: env.Product}, env.Counters), nil
}
