package sinks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Subject template fields.
const (
	fieldLiteral = iota
	fieldHost
	fieldIdx
	fieldVal
	fieldEvent
	fieldCPU
	fieldContainer
)

// Values a subject field takes when a record has nothing for it.
const (
	// EventOther is {event} for messages that are not process events.
	EventOther = "msg"
	// EventLoss is {event} for loss markers; the records the bridge adds
	// itself (gap, exit_lost) have their type (event.Kind.String) there.
	EventLoss = "loss"
	// NoCPU is {cpu} for messages that carry no CPU number.
	NoCPU = "-"
	// NoContainer is {container} for records without a container id: not
	// enriched for this sink, or a process outside any container.
	NoContainer = "-"
)

type subjectPart struct {
	field int
	lit   string
}

// subjectTemplate is a subject template compiled once into its parts. It
// renders by appending to a caller's buffer.
type subjectTemplate struct {
	parts    []subjectPart
	hasEvent bool
}

// compileSubject parses t; host replaces {host}, with the characters a
// subject token cannot hold ('.', '*', '>', white space) turned into '_'.
func compileSubject(t, host string) (*subjectTemplate, error) {
	if t == "" {
		return nil, errors.New("subject: empty")
	}
	st := &subjectTemplate{}
	rest := t
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			st.parts = append(st.parts, subjectPart{lit: rest})
			break
		}
		if i > 0 {
			st.parts = append(st.parts, subjectPart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("subject %q: unclosed {", t)
		}
		switch name := rest[i+1 : i+j]; name {
		case "host":
			st.parts = append(st.parts, subjectPart{field: fieldLiteral, lit: SubjectToken(host)})
		case "idx":
			st.parts = append(st.parts, subjectPart{field: fieldIdx})
		case "val":
			st.parts = append(st.parts, subjectPart{field: fieldVal})
		case "event":
			st.parts = append(st.parts, subjectPart{field: fieldEvent})
			st.hasEvent = true
		case "cpu":
			st.parts = append(st.parts, subjectPart{field: fieldCPU})
		case "container":
			st.parts = append(st.parts, subjectPart{field: fieldContainer})
		default:
			return nil, fmt.Errorf("subject %q: unknown field {%s}", t, name)
		}
		rest = rest[i+j+1:]
	}
	// Merge adjacent literals (the host is one).
	merged := st.parts[:0]
	for _, p := range st.parts {
		if n := len(merged); n > 0 && p.field == fieldLiteral && merged[n-1].field == fieldLiteral {
			merged[n-1].lit += p.lit
			continue
		}
		merged = append(merged, p)
	}
	st.parts = merged
	return st, nil
}

// SubjectToken makes s usable as one subject token: ".", "*", ">" and white
// space become "_". Request subjects use it for {host} as sink subjects do.
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

// append renders the subject of r. Loss markers render {event} as "loss";
// a template without {event} gets ".loss" appended for them instead, so
// that markers never share a subject with the messages they describe.
func (st *subjectTemplate) append(dst []byte, r *event.Record) []byte {
	for _, p := range st.parts {
		switch p.field {
		case fieldLiteral:
			dst = append(dst, p.lit...)
		case fieldIdx:
			dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Idx), 10)
		case fieldVal:
			dst = strconv.AppendUint(dst, uint64(r.Msg.ID.Val), 10)
		case fieldEvent:
			dst = append(dst, recordEvent(r)...)
		case fieldContainer:
			dst = appendContainer(dst, r)
		case fieldCPU:
			if cpu, ok := r.StreamCPU(); ok {
				dst = strconv.AppendUint(dst, uint64(cpu), 10)
			} else {
				dst = append(dst, NoCPU...)
			}
		}
	}
	if r.Kind == event.KindLoss && !st.hasEvent {
		dst = append(dst, "."+EventLoss...)
	}
	return dst
}

// recordEvent is the {event} value of r.
func recordEvent(r *event.Record) string {
	switch {
	case r.Kind != event.KindMessage:
		return r.Kind.String()
	case r.HasProc:
		return r.Proc.What.String()
	}
	return EventOther
}

// appendContainer appends {container}: the enriched process's container id
// (one token), else NoContainer. The runner hands a sink whose routes did
// not ask for enrichment a plain record, so this reads only what the sink
// may read.
func appendContainer(dst []byte, r *event.Record) []byte {
	if r.Enrich == event.EnrichDone && r.Enriched != nil && r.Enriched.Process != nil && r.Enriched.Process.ContainerID != "" {
		return append(dst, SubjectToken(r.Enriched.Process.ContainerID)...)
	}
	return append(dst, NoContainer...)
}
