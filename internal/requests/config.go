package requests

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
)

// Config is one entry of the requests: section: a NATS subject whose
// requests are sent to one connector id, and how. Its keys are decoded,
// defaulted and validated here; the config package composes the section
// (and checks that sink names a NATS sink).
type Config struct {
	Subject   string        `mapstructure:"subject"` // may hold {host}
	ID        string        `mapstructure:"id"`      // idx.val, exact
	Group     int           `mapstructure:"group"`   // the group replies are multicast to (the listener joins it)
	Timeout   time.Duration `mapstructure:"timeout"`
	Sink      string        `mapstructure:"sink"`       // the nats sink whose connection serves requests
	Format    string        `mapstructure:"format"`     // raw: body is the payload; json: {"data":"<base64>","flags":N}
	RateLimit float64       `mapstructure:"rate_limit"` // requests per second; 0: unlimited
	Burst     int           `mapstructure:"burst"`
	Users     []string      `mapstructure:"users"` // meant for these NATS users (enforced by NATS permissions)

	// Parsed by Validate.
	CnID cnmsg.ID `mapstructure:"-"` // ID
	// NATSSubject is Subject with {host} filled in: set by whoever knows
	// the host (the config package).
	NATSSubject string `mapstructure:"-"`
}

// Request defaults.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultFormat    = "raw"
	DefaultRateLimit = 10
	DefaultBurst     = 10
)

// SetDefaults fills in the keys left out.
func (c *Config) SetDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
}

// Validate reports every problem, each starting with its key relative to
// the entry ("group: …"), and sets CnID. natsSink reports whether a sink
// name is a NATS sink's (the sinks are the config's).
func (c *Config) Validate(natsSink func(name string) bool) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Subject == "" {
		bad("subject", "empty")
	}
	if p, err := router.ParsePattern(c.ID); err != nil || p.AnyIdx || p.AnyVal {
		bad("id", "%q: want an exact idx.val", c.ID)
	} else {
		c.CnID = cnmsg.ID{Idx: p.Idx, Val: p.Val}
	}
	if c.Group < 1 || c.Group > 32 {
		bad("group", "%d is outside 1..32", c.Group)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be positive")
	}
	if !natsSink(c.Sink) {
		bad("sink", "%q is not a nats sink", c.Sink)
	}
	if c.Format != "raw" && c.Format != "json" {
		bad("format", "%q is not raw or json", c.Format)
	}
	if c.RateLimit < 0 || c.Burst < 1 {
		bad("rate_limit", "rate must be >= 0 and burst >= 1")
	}
	return errors.Join(errs...)
}

// ackOnly reports whether replies to the id are matched by ack + 1 alone:
// the process connector numbers its acknowledgements from a per-CPU
// counter instead of echoing the request's seq.
func (c *Config) ackOnly() bool { return c.CnID.IsProc() }
