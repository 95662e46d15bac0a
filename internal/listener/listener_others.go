//go:build !linux

package listener

import (
	"context"

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
