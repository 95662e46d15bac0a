package reqtable

import (
	cryptorand "crypto/rand"
	"math/rand/v2"
)

// Pender reports whether a request with this id and seq is pending.
// *Table[T] implements it.
type Pender interface {
	Pending(id ID, seq uint32) bool
}

// SeqSource produces the seq and ack of outgoing requests as the connector
// protocol asks: seqs from a counter that starts at a random value and is
// incremented with each message (so locally unique until it wraps), and a
// random ack for each message. It is not safe for concurrent use.
type SeqSource struct {
	next uint32
	rng  *rand.ChaCha8
}

// NewSeqSource returns a SeqSource seeded from crypto/rand.
func NewSeqSource() *SeqSource {
	var seed [32]byte
	cryptorand.Read(seed[:]) // never returns an error (Go 1.24+)
	return NewSeqSourceFromSeed(seed)
}

// NewSeqSourceFromSeed returns a SeqSource whose output is fixed by seed,
// for tests.
func NewSeqSourceFromSeed(seed [32]byte) *SeqSource {
	rng := rand.NewChaCha8(seed)
	return &SeqSource{next: uint32(rng.Uint64()), rng: rng}
}

// Next returns the key for a new request to id: the next seq from the
// counter, skipping any that pending reports in use for id (so a wrapped
// counter never collides with a request still waiting), and a random ack.
// pending may be nil. Next returns ErrFull only if every seq is in use for
// id, which a Table bounded below 2^32 entries cannot cause.
func (s *SeqSource) Next(id ID, pending Pender) (Key, error) {
	ack := uint32(s.rng.Uint64())
	for range uint64(1) << 32 {
		seq := s.next
		s.next++
		if pending == nil || !pending.Pending(id, seq) {
			return Key{ID: id, Seq: seq, Ack: ack}, nil
		}
	}
	return Key{}, ErrFull
}
