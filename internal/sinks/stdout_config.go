package sinks

// StdoutConfig is a stdout sink's own config. It has no keys of its own
// besides the queue's.
type StdoutConfig struct{}

// SetDefaults implements TypeConfig.
func (c *StdoutConfig) SetDefaults() {}

// Validate implements TypeConfig.
func (c *StdoutConfig) Validate() error { return nil }

// QueueDefaults implements TypeConfig.
func (c *StdoutConfig) QueueDefaults() (int, int) { return DefaultQueueSize, DefaultQueueMaxBytes }
