package tap

import (
	"github.com/cnbridged/cnbridged/internal/event"
)

// Formatter writes lines as the stdout sink's text format does
// (event.TextFormatter: one renderer for both), with a HOST column after
// the time:
//
//	TIME         HOST     EVENT        PID    PPID USER             EXIT  DURATION PROCESS
//
// PROCESS is the executable and arguments when the daemon enriched the
// event, else the command name. Loss, gap, lost-exit and tap_dropped
// markers get lines of their own. Every string a line carries is quoted
// as the text format quotes it (control characters escaped), so that no
// process, and no publisher on a NATS subject, can write terminal escape
// codes to whoever runs the tap.
type Formatter struct {
	// Color colours events and markers (on a terminal only, and never
	// with NO_COLOR).
	Color bool
	// Width, when positive, cuts each row to that many columns (a
	// terminal's width), as the stdout sink does. Markers are not cut.
	Width int
}

func (f *Formatter) text() *event.TextFormatter {
	return &event.TextFormatter{Color: f.Color, Host: true, Width: f.Width}
}

// Header returns the column titles.
func (f *Formatter) Header() string { return f.text().TextHeader() }

// Format returns l as one line of columns, with a newline.
func (f *Formatter) Format(l *Line) string {
	b, err := f.text().AppendText(nil, l.Raw)
	if err != nil {
		// Parsed as a tap Line but not as the text format's (a field of
		// another type): shown, quoted, rather than hidden.
		return "unreadable line: " + event.QuoteArg(string(l.Raw)) + "\n"
	}
	return string(b)
}
