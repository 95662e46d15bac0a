package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TextFormatter renders output lines (the JSON contract in README.md) as
// aligned columns for people, like forkstat: time, event, pid, ppid, user,
// exit status, duration, then the process (exe and arguments when the line
// is enriched, else comm). Loss, gap and exit_lost markers get lines of their
// own. It works from the JSON line, not from a Record, so that every field
// the line carries (enrichment included) is shown without a second encoder
// to keep in step.
//
// A TextFormatter is safe for concurrent use.
type TextFormatter struct {
	// Color wraps events and markers in ANSI colours. Set it only when
	// the output is a terminal and NO_COLOR is not set.
	Color bool
	// Location is the time zone of the time column (nil: UTC).
	Location *time.Location
	// Width, when positive, cuts the process column of each row so that
	// the row fits in that many columns (a terminal's width), ending it
	// with "…". Markers are not cut.
	Width int
	// Host adds a HOST column after the time (the tap, which shows
	// lines from many hosts).
	Host bool
}

// Column widths. A wider value widens its row only.
const (
	wTime  = 12 // 15:04:05.000
	wHost  = 8
	wEvent = 8
	wPID   = 7
	wPPID  = 7
	wUser  = 8  // user name, else uid
	wExit  = 12 // SIGSEGV+core
	wDur   = 9
)

// TextHeader is the column header, aligned with AppendText's rows.
func (f *TextFormatter) TextHeader() string {
	var b []byte
	b = pad(b, "TIME", wTime)
	b = f.host(b, "HOST")
	b = pad(b, "EVENT", wEvent)
	b = padLeft(b, "PID", wPID)
	b = padLeft(b, "PPID", wPPID)
	b = pad(b, "USER", wUser)
	b = padLeft(b, "EXIT", wExit)
	b = padLeft(b, "DURATION", wDur)
	b = append(b, "PROCESS"...)
	return string(b) + "\n"
}

// ANSI colours.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
	ansiBoldRd = "\x1b[1;31m"
)

// ErrNotJSONLine is returned for input that is not one output line.
var ErrNotJSONLine = errors.New("event: not a JSON output line")

// AppendText appends the text form of one JSON output line, ending in a
// newline.
func (f *TextFormatter) AppendText(dst []byte, line []byte) ([]byte, error) {
	var l textLine
	if err := json.Unmarshal(bytes.TrimSpace(line), &l); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotJSONLine, err)
	}
	// ts is the leading columns: the time, and the host with Host.
	host := "-"
	if l.Host != "" {
		host = quoteArg(l.Host)
	}
	ts := string(f.host(pad(nil, quoteArg(f.clock(l.Time)), wTime), host))
	switch {
	case l.Type == "loss":
		return f.marker(dst, ts, "LOSS", ansiBoldRd, lossText(&l)), nil
	case l.Type == "gap":
		return f.marker(dst, ts, "GAP", ansiBoldRd, gapText(&l)), nil
	case l.Type == "tap_dropped":
		return f.marker(dst, ts, "DROPPED", ansiBoldRd, fmt.Sprintf("%d lines not shown: this reader was too slow", l.Dropped)), nil
	case l.Type == "suppressed":
		return f.marker(dst, ts, "SUPPRESSED", ansiYellow, suppressedText(&l, f.clock)), nil
	case l.Type == "life" && l.Life != nil:
		lp := &textProc{Event: "life", ExitStatus: l.Life.ExitStatus, Signal: l.Life.Signal, CoreDumped: l.Life.CoreDumped}
		pr := l.Process
		if pr != nil {
			c := *pr
			c.DurationNs = l.Life.DurationNs
			pr = &c
		}
		color := ansiBlue
		if (lp.ExitStatus != nil && *lp.ExitStatus != 0) || len(lp.Signal) > 0 {
			color = ansiRed
		}
		return f.row(dst, ts, "life", color, lp, pr, l.Parent, lifeText(l.Life)), nil
	case l.Type == "exit_lost":
		return f.row(dst, ts, "exit?", ansiYellow, &textProc{}, l.Process, nil,
			"(exit lost while events were dropped; last known state)"), nil
	case l.Type != "":
		return f.marker(dst, ts, strings.ToUpper(quoteArg(l.Type)), ansiYellow, ""), nil
	case l.Proc == nil:
		// Any other connector id: its header and payload size.
		return f.marker(dst, ts, "msg", ansiDim, fmt.Sprintf("%d.%d seq %d len %d sender %d", l.Idx, l.Val, l.Seq, l.Len, l.Sender)), nil
	}
	return f.row(dst, ts, quoteArg(l.Proc.Event), eventColor(l.Proc), l.Proc, l.Process, l.Parent, ""), nil
}

// clock formats the time column; an unparsable time is shown as it came.
func (f *TextFormatter) clock(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04:05.000")
}

func (f *TextFormatter) marker(dst []byte, ts, what, color, text string) []byte {
	dst = append(dst, ts...)
	dst = f.colored(dst, color, func(b []byte) []byte {
		b = pad(b, what, wEvent)
		return append(b, text...)
	})
	return append(dst, '\n')
}

// host appends the host column when f.Host is set.
func (f *TextFormatter) host(dst []byte, host string) []byte {
	if !f.Host {
		return dst
	}
	return pad(dst, host, wHost)
}

func (f *TextFormatter) colored(dst []byte, color string, body func([]byte) []byte) []byte {
	if !f.Color || color == "" {
		return body(dst)
	}
	dst = append(dst, color...)
	dst = body(dst)
	return append(dst, ansiReset...)
}

func eventColor(p *textProc) string {
	switch p.Event {
	case "exec":
		return ansiGreen
	case "fork":
		return ansiCyan
	case "exit":
		if (p.ExitStatus != nil && *p.ExitStatus != 0) || len(p.Signal) > 0 {
			return ansiRed
		}
		return ansiBlue
	case "coredump":
		return ansiRed
	case "none":
		return ansiDim
	}
	return ansiYellow
}

// row renders a process event (or an exit_lost record, with an empty proc).
func (f *TextFormatter) row(dst []byte, ts, ev, color string, p *textProc, pr *textProcess, parent *textParent, note string) []byte {
	start := len(dst)
	dst = append(dst, ts...)
	dst = f.colored(dst, color, func(b []byte) []byte { return pad(b, ev, wEvent) })

	pid, ppid := p.PID, p.ParentTGID
	if p.Event == "fork" {
		pid = p.ChildPID
	}
	if pr != nil {
		if pid == nil {
			pid = pr.PID
		}
		if pr.PPID != nil {
			ppid = pr.PPID
		}
	}
	if ppid == nil && parent != nil {
		ppid = parent.PID
	}
	dst = padLeft(dst, optUint(pid), wPID)
	dst = padLeft(dst, optUint(ppid), wPPID)
	user := "-"
	if pr != nil {
		switch {
		case pr.User != "":
			user = quoteArg(pr.User)
		case pr.UID != nil:
			user = optUint(pr.UID)
		}
	}
	dst = pad(dst, user, wUser)
	dst = padLeft(dst, exitText(p), wExit)
	dur := ""
	if pr != nil && pr.DurationNs != nil {
		dur = formatDuration(time.Duration(*pr.DurationNs))
	}
	dst = padLeft(dst, dur, wDur)

	// The process column: what ran, then what this event says.
	var parts []string
	if what := processText(p, pr); what != "" {
		parts = append(parts, what)
	}
	if d := eventDetail(p, pr); d != "" {
		parts = append(parts, d)
	}
	if note != "" {
		parts = append(parts, note)
	}
	text := strings.Join(parts, "  ")
	if f.Width > 0 {
		text = cut(text, f.Width-visibleWidth(dst[start:]))
	}
	dst = append(dst, text...)
	dst = bytes.TrimRight(dst, " ")
	return append(dst, '\n')
}
