package sinks

import (
	"context"

	"github.com/nats-io/nats.go"
)

// NATSConnection is the connection part of a NATS sink's keys: the
// servers, the credentials and TLS. Other NATS clients in the daemon
// (query.nats) take these keys with the same meaning and the same checks:
// Validate, Options and Probe run the NATS sink's own validation,
// connection options and probe on a sink with these keys, so the rules
// live in one place (NATSConfig).
type NATSConnection struct {
	URL          string    `mapstructure:"url"`
	User         string    `mapstructure:"user"`
	Password     string    `mapstructure:"password"`
	Token        string    `mapstructure:"token"`
	NkeySeedFile string    `mapstructure:"nkey_seed_file"`
	CredsFile    string    `mapstructure:"creds_file"`
	TLS          TLSConfig `mapstructure:"tls"`
}

// sink is a NATS sink with c's connection keys and defaults for the rest.
func (c *NATSConnection) sink() *NATSConfig {
	s := &NATSConfig{URL: c.URL, User: c.User, Password: c.Password, Token: c.Token,
		NkeySeedFile: c.NkeySeedFile, CredsFile: c.CredsFile, TLS: c.TLS}
	s.SetDefaults(DaemonKeys{})
	return s
}

// Validate reports every problem with the keys as a NATS sink's
// validation does (each error starts with its key: "url: …", "tls.ca_file:
// …"), files included: they must exist, and secrets must not be readable
// by group or others.
func (c *NATSConnection) Validate() error { return c.sink().Validate(DaemonKeys{Host: "h"}) }

// Options returns the authentication and TLS options for nats.Connect, with
// the checks a NATS sink makes when it connects (AuthOptions).
func (c *NATSConnection) Options() ([]nats.Option, error) { return AuthOptions(*c.sink()) }

// Probe connects to each server with these credentials, as a NATS sink's
// Probe does; key names the keys in the advice ("query.nats"), what names
// what run would refuse to start.
func (c *NATSConnection) Probe(ctx context.Context, key, what string) []Probe {
	return c.sink().probe(ctx, key, what)
}
