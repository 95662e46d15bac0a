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
func (c *StdoutConfig) SetDefaults() {
	if c.Format == "" {
		c.Format = FormatJSON
	}
}

// Validate implements TypeConfig.
func (c *StdoutConfig) Validate() error {
	if c.Format != FormatJSON && c.Format != FormatText {
		return fmt.Errorf("format: %q is not json or text", c.Format)
	}
	return nil
}

// QueueDefaults implements TypeConfig.
func (c *StdoutConfig) QueueDefaults() (int, int) { return DefaultQueueSize, DefaultQueueMaxBytes }
