package tap

import (
	"bufio"
	"fmt"
	"io"
)

// Printer filters lines and writes them, as columns or (JSON) as received.
type Printer struct {
	w      *bufio.Writer
	json   bool
	filter Filter
	fmt    Formatter
	header bool
	// Unparsed counts lines that were not event JSON (a raw-format sink);
	// they are skipped.
	Unparsed int
	// WhereErrors counts lines the --where expression could not evaluate
	// (a member they do not carry…); they are not shown. WhereError is
	// the last such error.
	WhereErrors int
	WhereError  error
}

// NewPrinter returns a printer writing to w, as JSON lines or as text's
// columns (callers colour and cut them on a terminal only, and do not
// colour with NO_COLOR).
func NewPrinter(w io.Writer, f Filter, json bool, text Formatter) *Printer {
	return &Printer{w: bufio.NewWriter(w), json: json, filter: f, fmt: text}
}

// Line handles one line, flushing it at once (a live view).
func (p *Printer) Line(b []byte) error {
	l, err := Parse(b)
	if err != nil {
		p.Unparsed++
		return nil
	}
	if !p.filter.Match(l) {
		return nil
	}
	if ok, err := p.filter.where(l); !ok {
		if err != nil {
			p.WhereErrors++
			p.WhereError = err
		}
		return nil
	}
	if p.json {
		p.w.Write(b)
		if len(b) == 0 || b[len(b)-1] != '\n' {
			p.w.WriteByte('\n')
		}
	} else {
		if !p.header {
			p.w.WriteString(p.fmt.Header())
			p.header = true
		}
		p.w.WriteString(p.fmt.Format(l))
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
