package sinks

import (
	"context"
	"fmt"
	"os"
)

// Probe implements Prober: the file is opened for appending and locked as
// the sink does at start (ProbeFile), by the check.
func (c *FileSinkConfig) Probe(_ context.Context, name string) []Probe {
	fc := c.FileConfig()
	return []Probe{{Path: fc.Path, Try: func() error { return ProbeFile(fc) },
		Detail: fmt.Sprintf("%s: opened for appending and locked as uid %d", fc.Path, os.Geteuid()),
		Advice: "point sinks." + name + ".path elsewhere"}}
}
