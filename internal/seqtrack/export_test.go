package seqtrack

import "math/bits"

// PendingForTest returns how many holes of stream k are still inside the
// reorder window (neither late nor lost yet).
func (t *Tracker) PendingForTest(k Key) int {
	s, ok := t.streams.Peek(k)
	if !ok {
		return 0
	}
	return bits.OnesCount64(s.holes)
}
