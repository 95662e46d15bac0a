package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// registerReceiveBuffer exports the receive buffer the socket got.
func (d *Daemon) registerReceiveBuffer() {
	lis := d.lis
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cnbridged_socket_receive_buffer_bytes",
		Help: "The connector socket's receive buffer as the kernel granted it, in the units of listener.receive_buffer_bytes (SO_RCVBUF reads back twice this).",
	}, func() float64 {
		n, err := lis.ReceiveBuffer()
		if err != nil {
			return 0
		}
		return float64(n / 2)
	}))
}

// warnReceiveBuffer logs a warning when the socket got a smaller receive
// buffer than configured: without CAP_NET_ADMIN the kernel caps it at
// net.core.rmem_max, silently.
func (d *Daemon) warnReceiveBuffer(want int) {
	got, err := d.lis.ReceiveBuffer()
	if err != nil {
		d.log.Warn("cannot read the receive buffer size", zap.Error(err))
		return
	}
	got /= 2 // SO_RCVBUF reads back twice the usable size
	if got < want {
		d.log.Warn("the connector socket got a smaller receive buffer than configured: without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max; grant CAP_NET_ADMIN or raise net.core.rmem_max, or bursts will be lost",
			zap.String("key", "listener.receive_buffer_bytes"), zap.Int("configured", want), zap.Int("got", got))
	}
}
