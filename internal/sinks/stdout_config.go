package sinks

import "fmt"

// StdoutConfig is a stdout sink's own config.
type StdoutConfig struct {
	Format string `mapstructure:"format"` // json (default), text
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
	if c.Format != FormatJSON && c.Format != FormatText {
		return fmt.Errorf("format: %q is not json or text", c.Format)
	}
	return nil
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
	return NewStream(env.Stdout, env.Encoder, env.Counters), nil
}
