// Package fold turns a process's records into one record per life: what
// a route with fold: lifecycle sends instead of fork, exec… and exit.
// The life record (type life) carries the process as its last event
// described it, its parent and ancestors, and the life: start, end,
// duration, the exec chain (each image with its time and arguments), how
// many records it folds, and the exit status.
//
// Records of a process are folded by the process's entity id, which
// needs enrichment; records without one (no enrichment, a process the
// table could not describe) and markers pass through unchanged. Thread
// forks and thread exits are counted in the life of their process. An
// exit_lost record passes through and ends the life it names, marked
// exit_lost.
//
// # Memory
//
// At most MaxLives lives are open at once, each with at most MaxExecs
// images (later execs are counted in execs_dropped). When a new life
// would pass MaxLives, the life opened first is emitted at once, marked
// open and evicted; what its process does later starts a new life. At
// stop (Flush) every open life is emitted, marked open, oldest first.
//
// The package is pure: records and times are passed in.
package fold

import (
	"strconv"
	"time"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// Bounds.
const (
	MaxLives = 65536
	MaxExecs = 16
)

// timeLayout is the line's time format.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Folder folds one route's records. It belongs to one goroutine.
type Folder struct {
	max   int
	lives map[string]*life
	// order is the lives by opening, for eviction and Flush: a ring of
	// keys, stale entries (lives since ended) skipped.
	order []orderEntry
	head  int
	seq   uint64
	// Folded counts the records folded into lives (not passed through).
	Folded uint64
	// Emitted counts the life records emitted.
	Emitted uint64
}

type orderEntry struct {
	key string
	seq uint64
}

type life struct {
	seq uint64
	rec fields.Record // the life record being built
}

// New returns an empty folder.
func New() *Folder { return newFolder(MaxLives) }

func newFolder(max int) *Folder { return &Folder{max: max, lives: map[string]*life{}} }

// Add takes one record of the route. fold is false when the record
// passes through unchanged; emit are life records that are complete (an
// exit, an exit_lost, or an eviction), to send after it. The folder
// keeps parts of r (strings, lists), which must not change afterwards.
func (f *Folder) Add(r *fields.Record) (fold bool, emit []fields.Record) {
	if r.Type.Set {
		if r.Type.V == fields.TypeExitLost {
			if l := f.take(r); l != nil {
				l.rec.Life.V.ExitLost = fields.Some(true)
				l.rec.Life.V.End = fields.Some(r.Time)
				emit = append(emit, f.finish(l))
			}
		}
		return false, emit
	}
	id, ok := r.Process.V.EntityID.Get()
	if !r.Proc.Set || !r.Process.Set || !ok {
		return false, nil
	}
	pe := &r.Proc.V
	l := f.lives[id]
	if l == nil {
		if pe.Thread.V {
			// A thread of a process whose life began before the route
			// saw it: nothing to fold it into without opening one.
			if pe.Event == "exit" {
				return false, nil
			}
		}
		var evicted []fields.Record
		l, evicted = f.open(id, r)
		emit = append(emit, evicted...)
	}
	f.Folded++
	lv := &l.rec.Life.V
	lv.Events++
	if pe.Thread.V {
		return true, emit
	}
	describe(&l.rec, r)
	switch pe.Event {
	case "fork":
		lv.Forked = true
	case "exec":
		if len(lv.Execs) < MaxExecs {
			lv.Execs = append(lv.Execs, fields.Image{Time: r.Time, Exe: r.Process.V.Exe.V, Cmdline: r.Process.V.Cmdline.V})
		} else {
			lv.ExecsDropped = fields.Some(lv.ExecsDropped.V + 1)
		}
	case "exit":
		lv.End = fields.Some(r.Time)
		lv.ExitCode, lv.ExitStatus, lv.Signal, lv.CoreDumped = pe.ExitCode, pe.ExitStatus, pe.Signal, pe.CoreDumped
		if d, ok := r.Process.V.DurationNs.Get(); ok {
			lv.DurationNs = fields.Some(d)
		}
		delete(f.lives, id)
		emit = append(emit, f.finish(l))
	}
	return true, emit
}

// open starts the life of process id at r, evicting the oldest life if
// the folder is full.
func (f *Folder) open(id string, r *fields.Record) (*life, []fields.Record) {
	var out []fields.Record
	for len(f.lives) >= f.max {
		old := f.oldest()
		if old == nil {
			break
		}
		old.rec.Life.V.Open, old.rec.Life.V.Evicted = fields.Some(true), fields.Some(true)
		out = append(out, f.finish(old))
	}
	f.seq++
	l := &life{seq: f.seq}
	l.rec = fields.Record{Time: r.Time, Host: r.Host, Type: fields.Some(fields.TypeLife), Life: fields.Some(fields.Life{})}
	f.lives[id] = l
	f.order = append(f.order, orderEntry{key: id, seq: l.seq})
	f.compact()
	return l, out
}

// oldest removes and returns the life opened first.
func (f *Folder) oldest() *life {
	for f.head < len(f.order) {
		e := f.order[f.head]
		f.head++
		if l := f.lives[e.key]; l != nil && l.seq == e.seq {
			delete(f.lives, e.key)
			return l
		}
	}
	return nil
}

// compact drops the order's consumed and stale entries once they are
// most of it, so that the order stays within twice the open lives (plus
// 64).
func (f *Folder) compact() {
	if len(f.order) <= 2*len(f.lives)+64 {
		return
	}
	kept := f.order[:0]
	for _, e := range f.order[f.head:] {
		if l := f.lives[e.key]; l != nil && l.seq == e.seq {
			kept = append(kept, e)
		}
	}
	clear(f.order[len(kept):])
	f.order, f.head = kept, 0
}

// take removes the life an exit_lost record names.
func (f *Folder) take(r *fields.Record) *life {
	id, ok := r.Process.V.EntityID.Get()
	if !r.Process.Set || !ok {
		return nil
	}
	l := f.lives[id]
	delete(f.lives, id)
	return l
}

// describe sets the life record's process, parent and ancestors from r.
func describe(dst, r *fields.Record) {
	dst.Process, dst.Parent, dst.Ancestors = r.Process, r.Parent, r.Ancestors
	dst.Process.V.DurationNs = fields.Opt[int64]{}
	dst.Process.V.PreviousExe = fields.Opt[string]{}
	if st, ok := r.Process.V.StartTime.Get(); ok {
		dst.Life.V.Start = fields.Some(st)
	}
}

// finish completes a life record.
func (f *Folder) finish(l *life) fields.Record {
	lv := &l.rec.Life.V
	if !lv.DurationNs.Set && lv.Start.Set && lv.End.Set {
		if s, err := time.Parse(timeLayout, lv.Start.V); err == nil {
			if e, err := time.Parse(timeLayout, lv.End.V); err == nil && !e.Before(s) {
				lv.DurationNs = fields.Some(e.Sub(s).Nanoseconds())
			}
		}
	}
	if lv.End.Set {
		l.rec.Time = lv.End.V
	}
	f.Emitted++
	return l.rec
}

// Flush emits every open life, marked open, oldest first, at now (Unix
// ns): at stop and at reload.
func (f *Folder) Flush(now int64) []fields.Record {
	var out []fields.Record
	at := time.Unix(0, now).UTC().Format(timeLayout)
	for l := f.oldest(); l != nil; l = f.oldest() {
		l.rec.Life.V.Open = fields.Some(true)
		l.rec.Time = at
		out = append(out, f.finish(l))
	}
	f.order, f.head = f.order[:0], 0
	return out
}

// Open is how many lives are open.
func (f *Folder) Open() int { return len(f.lives) }

// orderLen is the length of the opening order (tests: bounded).
func (f *Folder) orderLen() int { return len(f.order) }

// String names the folder's state, for logs.
func (f *Folder) String() string {
	return "open=" + strconv.Itoa(len(f.lives)) + " folded=" + strconv.FormatUint(f.Folded, 10)
}
