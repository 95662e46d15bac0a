package statefile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stream is one kernel sequence stream's last seq.
type Stream struct {
	Idx, Val, CPU uint32
	Seq           uint32
}

type streamKey struct{ Idx, Val, CPU uint32 }

// seqs.bin layout (native endian, every field 4-byte aligned):
//
//	0   magic   [8]byte  "cnbseq\x00\x01"
//	8   boot id [36]byte
//	44  count   uint32   slots in use
//	48  (reserved to 64)
//	64  slots   [MaxStreams]{idx, val, cpu, seq uint32}
//
// A slot is filled before count covers it, so a process killed between
// the two leaves the slot unused.
const (
	bootIDLen  = 36
	headerLen  = 64
	slotLen    = 16
	countOff   = 44
	MaxStreams = 4096
	seqsSize   = headerLen + MaxStreams*slotLen
)

var seqsMagic = [8]byte{'c', 'n', 'b', 's', 'e', 'q', 0, 1}

// DecodeSeqs returns the streams of a seqs.bin image and its boot id.
func DecodeSeqs(b []byte) (bootID string, streams []Stream, err error) {
	if len(b) < headerLen {
		return "", nil, fmt.Errorf("%w: seqs: %d bytes, want at least %d", ErrCorrupt, len(b), headerLen)
	}
	if !bytes.Equal(b[:8], seqsMagic[:]) {
		return "", nil, fmt.Errorf("%w: seqs: bad magic", ErrCorrupt)
	}
	bootID = string(b[8 : 8+bootIDLen])
	n := binary.NativeEndian.Uint32(b[countOff:])
	if n > MaxStreams || headerLen+int(n)*slotLen > len(b) {
		return "", nil, fmt.Errorf("%w: seqs: count %d does not fit", ErrCorrupt, n)
	}
	seen := make(map[streamKey]bool, n)
	for i := range int(n) {
		o := headerLen + i*slotLen
		s := Stream{
			Idx: binary.NativeEndian.Uint32(b[o:]),
			Val: binary.NativeEndian.Uint32(b[o+4:]),
			CPU: binary.NativeEndian.Uint32(b[o+8:]),
			Seq: binary.NativeEndian.Uint32(b[o+12:]),
		}
		k := streamKey{s.Idx, s.Val, s.CPU}
		if seen[k] {
			return "", nil, fmt.Errorf("%w: seqs: stream %d.%d cpu %d twice", ErrCorrupt, s.Idx, s.Val, s.CPU)
		}
		seen[k] = true
		streams = append(streams, s)
	}
	return bootID, streams, nil
}

// Seqs is the live seqs.bin: a shared file mapping. Set is for one
// goroutine (the kernel reader); Snapshot may run on another.
type Seqs struct {
	f     *os.File
	mem   []byte
	slots map[streamKey]int // owned by the Set goroutine
	full  bool
}

// OpenSeqs maps dir/seqs.bin. It returns what the previous daemon left
// when it ran in boot bootID (nil otherwise, with the reason as prevErr),
// then starts the table afresh for this boot with those streams in it, so
// that a crash before they are seen again loses nothing.
func OpenSeqs(dir, bootID string) (s *Seqs, prev []Stream, prevErr, err error) {
	if len(bootID) != bootIDLen {
		return nil, nil, nil, fmt.Errorf("seqs: boot id %q is not %d characters", bootID, bootIDLen)
	}
	path := filepath.Join(dir, SeqsName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("seqs: %w", err)
	}
	old, rerr := os.ReadFile(path)
	switch {
	case rerr != nil:
		prevErr = rerr
	case len(old) == 0:
		prevErr = fmt.Errorf("%s: %w", path, os.ErrNotExist)
	default:
		var id string
		id, prev, prevErr = DecodeSeqs(old)
		if prevErr == nil && id != bootID {
			prev, prevErr = nil, fmt.Errorf("%s: %w (boot %s)", path, ErrOtherBoot, id)
		}
	}
	if err := f.Truncate(seqsSize); err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("seqs: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, seqsSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("seqs: mmap: %w", err)
	}
	s = &Seqs{f: f, mem: mem, slots: make(map[streamKey]int)}
	s.store(countOff, 0)
	copy(mem[8:8+bootIDLen], bootID)
	copy(mem[:8], seqsMagic[:])
	for _, st := range prev {
		s.Set(st.Idx, st.Val, st.CPU, st.Seq)
	}
	return s, prev, prevErr, nil
}

// ErrOtherBoot means the saved state is from another boot: the kernel's
// counters started again, nothing in it applies.
var ErrOtherBoot = fmt.Errorf("saved by another boot")

func (s *Seqs) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.mem[off])) }

func (s *Seqs) store(off int, v uint32) { atomic.StoreUint32(s.word(off), v) }

// Set records seq as the last one read from a kernel stream. Streams
// beyond MaxStreams are not recorded (Full reports it).
func (s *Seqs) Set(idx, val, cpu, seq uint32) {
	k := streamKey{idx, val, cpu}
	if i, ok := s.slots[k]; ok {
		s.store(headerLen+i*slotLen+12, seq)
		return
	}
	i := len(s.slots)
	if i >= MaxStreams {
		s.full = true
		return
	}
	o := headerLen + i*slotLen
	s.store(o, idx)
	s.store(o+4, val)
	s.store(o+8, cpu)
	s.store(o+12, seq)
	s.store(countOff, uint32(i+1))
	s.slots[k] = i
}

// Full reports whether a stream could not be recorded.
func (s *Seqs) Full() bool { return s.full }

// Snapshot returns the recorded streams; safe beside Set.
func (s *Seqs) Snapshot() []Stream {
	n := int(atomic.LoadUint32(s.word(countOff)))
	out := make([]Stream, 0, n)
	for i := range n {
		o := headerLen + i*slotLen
		out = append(out, Stream{
			Idx: atomic.LoadUint32(s.word(o)),
			Val: atomic.LoadUint32(s.word(o + 4)),
			CPU: atomic.LoadUint32(s.word(o + 8)),
			Seq: atomic.LoadUint32(s.word(o + 12)),
		})
	}
	return out
}

// Close unmaps and closes the file; what was set stays in it.
func (s *Seqs) Close() error {
	err := unix.Munmap(s.mem)
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
