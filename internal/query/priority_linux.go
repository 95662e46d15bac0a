package query

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowNice is the CPU priority of a thread that works on answers: the
// lowest, so that the kernel runs the daemon's reader, enricher and sinks
// first when they want the CPU.
const lowNice = 19

// atLowPriority runs f on an OS thread of its own at the lowest CPU
// priority and waits for it. The thread is never handed back to the Go
// runtime: it ends with f's goroutine, and its priority with it.
func atLowPriority(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), lowNice)
		f()
	}()
	<-done
}
