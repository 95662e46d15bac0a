package seqtrack

import "math/bits"

// PendingForTest returns how many holes of stream k are still inside the
// reorder window (neither late nor lost yet).
func (l *Ledger) PendingForTest(k Key) int {
	s, ok := l.streams.Peek(k)
	if !ok {
		return 0
	}
	return bits.OnesCount64(s.holes)
}
