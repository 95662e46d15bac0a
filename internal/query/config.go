package query

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

// Config is the query: section: the fleet query service and the bounds of
// every answer (over NATS and over the tap socket).
type Config struct {
	// NATS is the service's connection, with the keys and checks of a NATS
	// sink's connection; an empty url leaves the service off.
	NATS sinks.NATSConnection `mapstructure:"nats"`
	// MaxRows bounds the rows of one answer (truncated beyond, flagged).
	MaxRows int `mapstructure:"max_rows"`
	// MaxPerSecond bounds the answers a daemon gives per second (with as
	// much burst); a request beyond it gets a rate_limited error answer.
	MaxPerSecond int `mapstructure:"max_per_second"`
	// Inventory is the heartbeat the daemon keeps in a JetStream key-value
	// bucket, so that queriers know which hosts should answer.
	Inventory Inventory `mapstructure:"inventory"`
}

// Inventory configures the heartbeat entry.
type Inventory struct {
	// Bucket is the key-value bucket ("" for no heartbeat). The daemon
	// creates it when it is missing.
	Bucket string `mapstructure:"bucket"`
	// JSDomain is the JetStream domain of the bucket: the hub's, for a
	// daemon behind a leaf node that has a JetStream domain of its own.
	JSDomain string `mapstructure:"js_domain"`
	// Interval is how often the entry is written.
	Interval time.Duration `mapstructure:"interval"`
	// TTL is the bucket's max age: an entry not written again within it
	// (a daemon killed or hung) expires.
	TTL time.Duration `mapstructure:"ttl"`
}

// Defaults.
const (
	DefaultMaxRows      = 1000
	DefaultMaxPerSecond = 20
	DefaultBucket       = "cnbridged_hosts"
	DefaultInterval     = 10 * time.Second
	DefaultTTL          = 30 * time.Second
	// MaxMaxRows bounds max_rows: an answer is one NATS message.
	MaxMaxRows = 100_000
)

// Enabled reports whether the NATS service runs.
func (c *Config) Enabled() bool { return c.NATS.URL != "" }

// Validate reports every problem, each starting with its key relative to
// the section ("max_rows: …", "nats.url: …").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.MaxRows < 1 || c.MaxRows > MaxMaxRows {
		bad("max_rows", "%d is outside 1..%d", c.MaxRows, MaxMaxRows)
	}
	if c.MaxPerSecond < 1 {
		bad("max_per_second", "%d: must be at least 1", c.MaxPerSecond)
	}
	if c.Enabled() {
		for _, err := range flatten(c.NATS.Validate()) {
			errs = append(errs, fmt.Errorf("nats.%w", err))
		}
	} else if c.NATS != (sinks.NATSConnection{}) {
		bad("nats.url", "required when any other nats key is set (an empty url leaves the query service off)")
	}
	if b := c.Inventory.Bucket; b != "" && !validBucket(b) {
		bad("inventory.bucket", "%q: want letters, digits, - and _ only", b)
	}
	if c.Inventory.Bucket != "" {
		if c.Inventory.Interval <= 0 {
			bad("inventory.interval", "must be positive")
		}
		if c.Inventory.TTL < 2*c.Inventory.Interval {
			bad("inventory.ttl", "%s is less than twice inventory.interval (%s): a live host's entry would expire between two writes",
				c.Inventory.TTL, c.Inventory.Interval)
		}
	}
	if strings.ContainsAny(c.Inventory.JSDomain, " .*>") {
		bad("inventory.js_domain", "%q: a domain is one token without spaces, dots or wildcards", c.Inventory.JSDomain)
	}
	return errors.Join(errs...)
}

func validBucket(b string) bool {
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// flatten lists the errors joined in err.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
