// Package event holds what flows from the kernel reader to the sinks: routed
// records, grouped in pooled batches, and their JSON line encoding.
package event

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proc"
)

// Kind tells a record that carries a connector message from an in-band
// marker the bridge adds itself.
type Kind uint8

const (
	// KindMessage is a connector message received from the socket.
	KindMessage Kind = iota
	// KindLoss marks a hole in a sequence stream: messages that were lost
	// before they reached cnbridged.
	KindLoss
	// KindExitLost reports a process the table knew that had gone when the
	// table was reconciled with /proc after loss: its exit event was lost.
	// Enriched.Process describes it.
	KindExitLost
	// KindGap reports a time cnbridged was not listening: it was started
	// again in the same boot. Gap describes it.
	KindGap
	// KindSuppressed counts records a route's rate limit did not send,
	// under their key. Suppressed describes them.
	KindSuppressed
	// KindLife is a process's life folded into one record (a route's
	// fold: lifecycle). Life describes it.
	KindLife
	// numKinds counts the kinds; a new kind goes above it, with its name
	// (Kind.String) and its id rule (IDs).
	numKinds
)

// Life is a folded process life: the process as its last event described
// it, its parent and ancestors, and the life (internal/fold builds it).
type Life struct {
	Process   fields.Opt[fields.Process]
	Parent    fields.Opt[fields.Parent]
	Ancestors []fields.Ancestor
	Life      fields.Life
}

// Suppressed counts the records of one rate-limit key that a route did
// not send between From and To.
type Suppressed struct {
	Route int // the route's index in the config
	// Key is the key's members, in the order of the route's per; empty
	// for the overflow key.
	Key []KeyValue
	// Overflow: the key that every key beyond max_keys folds into.
	Overflow bool
	Count    uint64
	From, To int64 // receive times of the first and last suppressed record, Unix ns
}

// KeyValue is one member of a rate-limit key: a path of the field model
// (process.exe) and the record's value there, as a string.
type KeyValue struct{ Path, Value string }

// Gap describes a time cnbridged was not listening.
type Gap struct {
	// From is the previous daemon's stop (or, when it died, its last
	// state save); To is when this one started listening. Unix ns.
	From, To int64
	// PIDsAllocated is ns_last_pid's advance meanwhile (threads too);
	// PIDsWrapped when it wrapped at pid_max.
	PIDsAllocated uint64
	PIDsWrapped   bool
	// CleanStop is set when the previous daemon stopped as asked.
	CleanStop bool
}

// Loss describes a sequence gap.
type Loss struct {
	CPU     uint32 // process connector: the CPU stream with the gap
	HasCPU  bool
	FromSeq uint32 // first missing seq
	ToSeq   uint32 // last missing seq
	Lost    uint32 // number of messages missing
}

// Record is one routed item. Msg.Data points into the batch that holds the
// record and is valid only while that batch is held.
type Record struct {
	Kind    Kind
	Time    int64  // receive time, Unix nanoseconds
	Sender  uint32 // netlink port id of the sender; 0 is the kernel
	Msg     cnmsg.Message
	Proc    cnmsg.ProcEvent // set when HasProc
	HasProc bool
	Loss    Loss // set for KindLoss; Msg.ID names the stream
	Gap     *Gap // set for KindGap
	// Suppressed is set for KindSuppressed, Life for KindLife.
	Suppressed *Suppressed
	Life       *Life
	// Targets has bit i set when sink slot i receives this record.
	Targets uint64
	// EnrichTargets are the sinks among Targets whose routes asked for
	// enrichment: only they show Enriched, and only they wait for it.
	EnrichTargets uint64
	// Stages has bit i set when the route with selection stage i (a
	// where, rate_limit or fold; see the bridge's Plan) matched the
	// record. SelectTargets are the sinks among Targets that receive it
	// only through such routes: they wait for the enricher, which decides
	// for each whether one of its routes selected it (Unselected). The
	// reader sets both before the hand-off.
	Stages        uint64
	SelectTargets uint64
	// Unselected are the sinks among SelectTargets that none of their
	// matching routes selected: they skip the record. The enricher writes
	// it while those sinks wait; no other sink may read it.
	Unselected uint64
	// Enrich and Enriched carry the process table's description of a
	// process event. Enriched is set when Enrich is EnrichDone. The
	// enricher writes both while sinks in EnrichTargets wait; other sinks
	// must not read them (see Plain).
	Enrich   EnrichState
	Enriched *Enrichment
	// Ancestors is how many ancestors to describe (the route's ancestors).
	Ancestors uint8
	// Capture is what the reader read from /proc for an exec as it
	// received it, for the enricher (nil: nothing was read). The reader
	// sets it before the hand-off; the enricher takes it (see Plain).
	Capture *Capture
}

// Capture is what the reader read from /proc for an exec event as soon as
// it received it, before the process could end.
type Capture struct {
	// Observed holds the image fields read (exe, cmdline, cwd, cgroup,
	// comm). Late names those the reader did not read because its time
	// budget for the batch ran out: the enricher reads them later.
	// Missing names those it could not read: links it may not follow, and
	// the fields still to read when the process went during the reads.
	// Gone reports a process gone before the first read.
	Observed proc.Observed
	// At is when the last read ended, CLOCK_MONOTONIC nanoseconds (the
	// clock of proc events' timestamps).
	At int64
	// Overtaken is the reader's count, at the capture, of the exec events
	// it received stamped before an earlier capture of a pid sharing this
	// one's slot had ended (enrich.Capturer). If the count has risen by
	// the time the enricher applies the exec, a later exec of the pid may
	// show in what was read: the read is stale.
	Overtaken uint32
}

// Enrichment describes the process of an event, from the process table.
type Enrichment struct {
	// Process is the event's process: for fork the child (for a thread
	// fork, its group), for exit the process as it was. Nil with Gone.
	Process *proc.Process
	// Parent is Process's parent, when the table knows it.
	Parent *proc.Process
	// Ancestors are the parent's ancestors, nearest first, up to the
	// route's ancestors: N (the parent counts as the first).
	Ancestors []*proc.Process
	// DurationNs is set on exits: exit timestamp minus start.
	DurationNs  int64
	HasDuration bool
	// Gone: the process was unknown to the table and had gone from /proc.
	Gone bool
	// PID of a gone process.
	PID uint32
}

// Plain returns a copy of r without its enrichment, reading none of the
// fields the enricher writes or takes (Enrich, Enriched, Capture,
// Unselected): what a sink that did not ask for enrichment encodes, safe
// while the enricher is still at work on r.
func (r *Record) Plain() Record {
	return Record{Kind: r.Kind, Time: r.Time, Sender: r.Sender, Msg: r.Msg, Proc: r.Proc,
		HasProc: r.HasProc, Loss: r.Loss, Gap: r.Gap, Suppressed: r.Suppressed, Life: r.Life, Targets: r.Targets, EnrichTargets: r.EnrichTargets,
		Stages: r.Stages, SelectTargets: r.SelectTargets, Ancestors: r.Ancestors}
}

// EnrichState tells where a record is in enrichment.
type EnrichState uint8

const (
	EnrichNone    EnrichState = iota // not asked for
	EnrichPending                    // waiting for the enricher
	EnrichDone                       // Process is set
	EnrichSkipped                    // not enriched (the daemon was stopping)
	// EnrichTable marks a process event no sink receives (unrouted or
	// filtered) that still goes to the enricher to keep the table exact.
	EnrichTable
)

// Batch limits. A batch is handed to sinks as a unit: one queue operation per
// sink per batch keeps the kernel reader's per-message cost low. Batches
// start small and grow to these limits as traffic fills them, so that a
// queue of many one-message batches (a slow sink at a low rate) does not
// hold a full-size arena per message.
const (
	MaxBatchRecords = 256
	maxArena        = 256 << 10
	initialRecords  = 2
	initialArena    = 512
	// A batch that grew past shrinkRecords in a burst but then carried
	// only a few records is cut back to the initial size when it returns
	// to the pool, so slow periods queue small batches.
	shrinkRecords = 64
)

// recordSize is the memory one Record slot takes.
const recordSize = int(unsafe.Sizeof(Record{}))

// Batch is a group of records that share one copy of their payloads. A
// batch is shared read-only by every sink it was sent to and returns to its
// pool when the last of them releases it.
type Batch struct {
	Records []Record
	arena   []byte
	refs    atomic.Int32
	pool    *Pool
	// enriching is held while the enricher fills in Process fields; sinks
	// wait on it before reading the records.
	enriching sync.WaitGroup
}

// StartEnrich marks the batch as being enriched: WaitEnriched blocks until
// EnrichDone.
func (b *Batch) StartEnrich() { b.enriching.Add(1) }

// EnrichDone ends what StartEnrich began.
func (b *Batch) EnrichDone() { b.enriching.Done() }

// WaitEnriched returns once no enrichment of the batch is under way.
func (b *Batch) WaitEnriched() { b.enriching.Wait() }

// Pool recycles batches so that steady-state forwarding allocates nothing.
// It is a bounded free list rather than a sync.Pool: batches are taken on
// the reader's goroutine and given back on the sinks', which a sync.Pool's
// per-P caches serve poorly, and its contents must not vary with the race
// detector (which drops sync.Pool items at random).
type Pool struct{ free chan *Batch }

// poolSize is how many idle batches a pool keeps.
const poolSize = 64

// NewPool returns an empty batch pool.
func NewPool() *Pool { return &Pool{free: make(chan *Batch, poolSize)} }

func (p *Pool) newBatch() *Batch {
	return &Batch{
		Records: make([]Record, 0, initialRecords),
		arena:   make([]byte, 0, initialArena),
		pool:    p,
	}
}

// Get returns an empty batch holding one reference.
func (p *Pool) Get() *Batch {
	var b *Batch
	select {
	case b = <-p.free:
	default:
		b = p.newBatch()
	}
	b.Records = b.Records[:0]
	b.arena = b.arena[:0]
	b.refs.Store(1)
	return b
}

// Fits reports whether one more record with n payload bytes fits. A first
// record always fits, so that a payload larger than the arena still moves.
func (b *Batch) Fits(n int) bool {
	if len(b.Records) == 0 {
		return true
	}
	return len(b.Records) < MaxBatchRecords && len(b.arena)+n <= maxArena
}

// Add appends a record whose Msg.Data is copied into the batch; the caller
// checks Fits first. It returns the stored record so that the caller can
// finish filling it in; the pointer is valid until the next Add.
func (b *Batch) Add(r *Record) *Record {
	if r.Msg.Data != nil {
		if len(b.arena)+len(r.Msg.Data) > cap(b.arena) {
			b.growArena(len(r.Msg.Data))
		}
		off := len(b.arena)
		b.arena = append(b.arena, r.Msg.Data...)
		r.Msg.Data = b.arena[off:len(b.arena):len(b.arena)]
	}
	b.Records = append(b.Records, *r)
	return &b.Records[len(b.Records)-1]
}

// growArena makes room for n more bytes and points the records already
// stored at the new arena, so the old one can be freed.
func (b *Batch) growArena(n int) {
	old := b.arena
	c := max(2*cap(old), len(old)+n, initialArena)
	b.arena = make([]byte, len(old), c)
	copy(b.arena, old)
	base := unsafe.Pointer(unsafe.SliceData(old))
	for i := range b.Records {
		d := b.Records[i].Msg.Data
		if len(d) == 0 {
			continue
		}
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(d))) - uintptr(base))
		b.Records[i].Msg.Data = b.arena[off : off+len(d) : off+len(d)]
	}
}

// Bytes is the memory the batch holds (its arena and record slots), for
// byte-bounded queues: what a queued batch really costs, however few
// records it carries.
func (b *Batch) Bytes() int { return cap(b.arena) + cap(b.Records)*recordSize }

// Count returns how many records have any bit of mask set.
func (b *Batch) Count(mask uint64) int {
	n := 0
	for i := range b.Records {
		if b.Records[i].Targets&mask != 0 {
			n++
		}
	}
	return n
}

// Retain adds n references, one for each sink the batch is handed to.
func (b *Batch) Retain(n int) { b.refs.Add(int32(n)) }

// Release drops one reference; the last one returns the batch to its pool.
func (b *Batch) Release() {
	switch n := b.refs.Add(-1); {
	case n == 0:
		if cap(b.Records) > shrinkRecords && len(b.Records) <= initialRecords {
			b.Records = make([]Record, 0, initialRecords)
			b.arena = make([]byte, 0, initialArena)
		}
		clear(b.Records) // drop pointers into old arenas
		select {
		case b.pool.free <- b:
		default: // enough idle batches: let this one go
		}
	case n < 0:
		panic("event: batch released more often than retained")
	}
}
