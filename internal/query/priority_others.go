//go:build !linux

package query

// atLowPriority runs f (the thread priority is Linux only).
func atLowPriority(f func()) { f() }
