//go:build !linux

package listener

import (
	"context"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"

	"go.uber.org/zap"
)

// Listener is unavailable off Linux.
type Listener struct{}

// New returns ErrUnsupported.
func New(Config, *zap.Logger) (*Listener, error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported.
func (*Listener) Run(context.Context, Handler) error { return ErrUnsupported }

// Subscribe returns ErrUnsupported.
func (*Listener) Subscribe(context.Context) error { return ErrUnsupported }

// Drain returns ErrUnsupported.
func (*Listener) Drain(Handler, time.Time) (uint64, bool, error) { return 0, true, ErrUnsupported }

// Wake does nothing.
func (*Listener) Wake() {}

// Close does nothing.
func (*Listener) Close() error { return nil }

// SetGroups returns ErrUnsupported.
func (*Listener) SetGroups([]int) error { return ErrUnsupported }

// Stats returns zeros.
func (*Listener) Stats() Stats { return Stats{} }

// Drops returns ErrUnsupported.
func (*Listener) Drops() (uint64, error) { return 0, ErrUnsupported }

// Subscribed reports false.
func (*Listener) Subscribed() bool { return false }

// Unsubscribe returns ErrUnsupported.
func (*Listener) Unsubscribe() error { return ErrUnsupported }

// SetReceiveBuffer returns ErrUnsupported.
func (*Listener) SetReceiveBuffer(int) error { return ErrUnsupported }

// Emitter is unavailable off Linux.
type Emitter struct{}

// NewEmitter returns ErrUnsupported.
func NewEmitter() (*Emitter, error) { return nil, ErrUnsupported }

// PortID returns 0.
func (*Emitter) PortID() uint32 { return 0 }

// Emit returns ErrUnsupported.
func (*Emitter) Emit([]byte, int) error { return ErrUnsupported }

// SendKernel returns ErrUnsupported.
func (*Emitter) SendKernel([]byte) error { return ErrUnsupported }

// ReadUnicast returns ErrUnsupported.
func (*Emitter) ReadUnicast(context.Context, func([]byte, uint32)) error { return ErrUnsupported }

// Close does nothing.
func (*Emitter) Close() error { return nil }

// SetProcMask returns ErrUnsupported.
func (*Listener) SetProcMask(context.Context, cnmsg.What) error { return ErrUnsupported }

// Groups returns nil.
func (*Listener) Groups() []int { return nil }

// ReceiveBuffer returns ErrUnsupported.
func (*Listener) ReceiveBuffer() (int, error) { return 0, ErrUnsupported }

// SetPriority does nothing.
func (*Listener) SetPriority(int) {}

// EmptyAt returns the zero Time.
func (*Listener) EmptyAt() time.Time { return time.Time{} }
