package daemon

import (
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

// newNATS builds a NATS sink. d.mu is held (newSink is called from
// applySinks), which also guards the NATS metrics, registered once per
// daemon on first use so that a second sink or a reload never registers
// the same names again.
func (d *Daemon) newNATS(name string, sc *config.Sink, c *sinks.Counters, log *zap.Logger) (sinks.Sink, error) {
	if d.natsMet == nil {
		d.natsMet = sinks.NewNATSMetrics(d.reg)
	}
	cfg := sinks.NATSConfig{
		Name:                 name,
		URL:                  sc.URL,
		Subject:              sc.Subject,
		Format:               sc.Format,
		Host:                 d.cfg.Host,
		JetStream:            sc.JetStream,
		MaxInFlight:          sc.MaxInFlight,
		AckTimeout:           sc.AckTimeout,
		ReconnectBufferBytes: sc.ReconnectBufferBytes,
		DrainTimeout:         sc.DrainTimeout,
		User:                 sc.User,
		Password:             sc.Password,
		Token:                sc.Token,
		NkeySeedFile:         sc.NkeySeedFile,
		CredsFile:            sc.CredsFile,
		TLS: sinks.NATSTLS{
			CAFile:             sc.TLS.CAFile,
			CertFile:           sc.TLS.CertFile,
			KeyFile:            sc.TLS.KeyFile,
			InsecureSkipVerify: sc.TLS.InsecureSkipVerify,
		},
		Context: d.sinkCtx,
	}
	if st := sc.Stream; st != nil {
		cfg.Stream = &sinks.NATSStream{
			Name:            st.Name,
			Subjects:        st.Subjects,
			Storage:         st.Storage,
			DuplicateWindow: st.DuplicateWindow,
			Replicas:        st.Replicas,
		}
	}
	return sinks.NewNATS(cfg, d.enc, c, d.natsMet, log)
}
