// Package schema encodes records in the schemas other tools ingest: the
// Elastic Common Schema (ECS 9.4.0) and the Open Cybersecurity Schema
// Framework (OCSF 1.8.0, class Process Activity). Each encoder is a pure
// function of a fields.Record (the typed model of cnbridged's JSON line)
// that appends one JSON object, so that a sink encodes a record in any
// schema with no allocation beyond its buffer. README's "Schemas" section
// has the mapping tables; the tests hold every emitted name and type to
// the schemas' own definitions, kept in testdata with their source.
//
// The package imports nothing of cnbridged but fields and does no I/O.
package schema

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// Versions of the schemas the encoders write.
const (
	ECSVersion  = "9.4.0"
	OCSFVersion = "1.8.0"
)

// Name is a sink's schema key: native, ecs or ocsf.
type Name string

// Schemas.
const (
	Native Name = "native" // cnbridged's own JSON line (README "Output")
	ECS    Name = "ecs"
	OCSF   Name = "ocsf"
)

// Accepted lists the schema names for error messages.
const Accepted = "native, ecs or ocsf"

// Parse returns the schema named s ("" is native).
func Parse(s string) (Name, error) {
	switch Name(s) {
	case "", Native:
		return Native, nil
	case ECS, OCSF:
		return Name(s), nil
	}
	return "", fmt.Errorf("%q is not %s", s, Accepted)
}

// UnmarshalText parses a config value.
func (n *Name) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// String returns the config value ("native" for the zero Name).
func (n Name) String() string {
	if n == "" {
		return string(Native)
	}
	return string(n)
}

// Product names the software that wrote a record (OCSF metadata.product).
type Product struct {
	Version string // cnbridged's version
}

type optional[T any] = fields.Opt[T]

// kind is what a record is, for the mappings.
type kind int

const (
	kindProc       kind = iota // a process event (connector 1.1)
	kindProcNoPID              // one that names no process: an acknowledgement (event none), an event type cnbridged does not know
	kindMsg                    // a message of another connector id
	kindLoss                   // loss marker
	kindGap                    // a time cnbridged was not listening
	kindExitLost               // an exit the kernel's event for was lost
	kindTapDropped             // written by the tap server only
	kindSuppressed             // records a route's rate limit did not send, counted
	kindLife                   // a process's life folded into one record
	kindOther                  // a marker type this version does not know
)

func kindOf(r *fields.Record) kind {
	if r.Type.Set {
		switch r.Type.V {
		case fields.TypeLoss:
			return kindLoss
		case fields.TypeGap:
			return kindGap
		case fields.TypeExitLost:
			return kindExitLost
		case fields.TypeTapDropped:
			return kindTapDropped
		case fields.TypeSuppressed:
			return kindSuppressed
		case fields.TypeLife:
			return kindLife
		}
		return kindOther
	}
	if r.Proc.Set {
		if r.Proc.V.Event == "none" || r.Proc.V.What.Set {
			return kindProcNoPID
		}
		return kindProc
	}
	return kindMsg
}

// timeLayout is the line's time format (RFC 3339, nanoseconds, UTC).
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// unixNano reads a time of the line: the fixed-width UTC layout the
// daemon writes without time.Parse, any other RFC 3339 time with it.
func unixNano(s string) (int64, bool) {
	if len(s) == len(timeLayout) && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == '.' && s[29] == 'Z' {
		y, ok1 := digits(s[0:4])
		mo, ok2 := digits(s[5:7])
		d, ok3 := digits(s[8:10])
		h, ok4 := digits(s[11:13])
		mi, ok5 := digits(s[14:16])
		se, ok6 := digits(s[17:19])
		ns, ok7 := digits(s[20:29])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && se < 61 {
			days := daysFromCivil(y, mo, d)
			return ((days*24+h)*60+mi)*60*1e9 + se*1e9 + ns, true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

func digits(s string) (int64, bool) {
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic
// Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// unixMilli is unixNano in milliseconds (OCSF timestamp_t).
func unixMilli(s string) (int64, bool) {
	ns, ok := unixNano(s)
	return ns / 1e6, ok
}

// baseName returns the last element of a path ("" for "").
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// exitCode is the exit code of an exit event as the shell reports it:
// the exit status of a normal exit, 128 + the signal's number for a
// process a signal killed. ok is false when the record has neither.
func exitCode(p *fields.Proc) (int64, bool) {
	return shellExitCode(exitOf(p))
}

// exit is how a process ended, from an exit event or a life record.
type exit struct {
	status, code optional[int64]
	signal       optional[fields.Signal]
	coreDumped   optional[bool]
}

func exitOf(p *fields.Proc) exit {
	return exit{status: p.ExitStatus, code: p.ExitCode, signal: p.Signal, coreDumped: p.CoreDumped}
}

func lifeExit(l *fields.Life) exit {
	return exit{status: l.ExitStatus, code: l.ExitCode, signal: l.Signal, coreDumped: l.CoreDumped}
}

func shellExitCode(e exit) (int64, bool) {
	if e.status.Set {
		return e.status.V, true
	}
	if e.signal.Set && e.code.Set {
		return 128 + e.code.V&0x7f, true
	}
	return 0, false
}

// appendExitReason appends, as a JSON string, how a process ended:
// "exit status 1", "killed by SIGSEGV (core dumped)", "killed by signal
// 40". ok is false when the record does not say.
func appendExitReason(dst []byte, p exit) (_ []byte, ok bool) {
	switch {
	case p.status.Set:
		dst = append(dst, `"exit status `...)
		dst = strconv.AppendInt(dst, p.status.V, 10)
	case p.signal.Set:
		dst = append(dst, `"killed by `...)
		name := string(p.signal.V)
		if name != "" && name[0] >= '0' && name[0] <= '9' {
			dst = append(dst, "signal "...)
		}
		n := len(dst)
		dst = appendString(dst, name)
		copy(dst[n:], dst[n+1:len(dst)-1]) // without its quotes
		dst = dst[:len(dst)-2]
		if p.coreDumped.V {
			dst = append(dst, " (core dumped)"...)
		}
	default:
		return dst, false
	}
	return append(dst, '"'), true
}

// appendCommandLine appends args joined with spaces as a JSON string.
func appendCommandLine(dst []byte, args []string) []byte {
	if len(args) == 1 {
		return appendString(dst, args[0])
	}
	// Escape each argument as a string, then join the insides.
	dst = append(dst, '"')
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ' ')
		}
		n := len(dst)
		dst = appendString(dst, a)
		// Drop the quotes appendString added around a.
		copy(dst[n:], dst[n+1:len(dst)-1])
		dst = dst[:len(dst)-2]
	}
	return append(dst, '"')
}
