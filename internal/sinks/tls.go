package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is a sink's tls section (nats, otlp). A NATS sink with any key
// set connects only over TLS (there is no plaintext fallback); an otlp
// sink uses TLS when its endpoint's scheme is https or any key is set.
type TLSConfig struct {
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// Enabled reports whether any TLS key is set.
func (t TLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// pairErr is the error of a cert_file without key_file, or the reverse.
func (t TLSConfig) pairErr() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls.cert_file: cert_file and key_file go together")
	}
	return nil
}

// configFile is a file a config key names, checked at validation to be
// readable (a secret also not by group or others).
type configFile struct {
	key, path string
	secret    bool
}

// files are the section's files, the key first.
func (t TLSConfig) files() []configFile {
	return []configFile{{"tls.key_file", t.KeyFile, true}, {"tls.cert_file", t.CertFile, false}, {"tls.ca_file", t.CAFile, false}}
}

// checkFiles returns the errors of the files that are set, each starting
// with its key.
func checkFiles(fs []configFile) []error {
	var errs []error
	for _, f := range fs {
		if f.path == "" {
			continue
		}
		if err := checkConfigFile(f.path, f.secret); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	return errs
}

// build returns the tls.Config of the section.
func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // off unless configured
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificates", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if err := checkSecretFile("tls.key_file", t.KeyFile); err != nil {
			return nil, err
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
