package daemon

import (
	"errors"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/sinks"
)

func (d *Daemon) newNATS(name string, sc *config.Sink, c *sinks.Counters, log *zap.Logger) (sinks.Sink, error) {
	return nil, errors.New("nats sink: not built yet")
}
