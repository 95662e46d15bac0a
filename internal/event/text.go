package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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

// textLine is the part of the JSON contract the text format shows.
type textLine struct {
	Time   string `json:"time"`
	Host   string `json:"host"`
	Type   string `json:"type"`
	Idx    uint32 `json:"idx"`
	Val    uint32 `json:"val"`
	Seq    uint32 `json:"seq"`
	Len    uint32 `json:"len"`
	Sender uint32 `json:"sender"`
	Data   string `json:"data"`
	// loss
	CPU     *uint32 `json:"cpu"`
	FromSeq uint32  `json:"from_seq"`
	ToSeq   uint32  `json:"to_seq"`
	Lost    uint64  `json:"lost"`
	// gap
	Reason        string          `json:"reason"`
	From          json.RawMessage `json:"from"`
	To            json.RawMessage `json:"to"`
	PIDsAllocated *uint64         `json:"pids_allocated"`
	// tap_dropped (written by the tap server to a slow client)
	Dropped uint64 `json:"dropped"`

	Proc    *textProc    `json:"proc"`
	Process *textProcess `json:"process"`
	Parent  *textParent  `json:"parent"`
}

type textProc struct {
	Event      string          `json:"event"`
	PID        *uint32         `json:"pid"`
	TGID       *uint32         `json:"tgid"`
	ParentPID  *uint32         `json:"parent_pid"`
	ParentTGID *uint32         `json:"parent_tgid"`
	ChildPID   *uint32         `json:"child_pid"`
	ChildTGID  *uint32         `json:"child_tgid"`
	RUID       *uint32         `json:"ruid"`
	EUID       *uint32         `json:"euid"`
	RGID       *uint32         `json:"rgid"`
	EGID       *uint32         `json:"egid"`
	TracerPID  *uint32         `json:"tracer_pid"`
	Comm       *string         `json:"comm"`
	ExitStatus *int64          `json:"exit_status"`
	Signal     json.RawMessage `json:"signal"`
	CoreDumped bool            `json:"core_dumped"`
	Thread     bool            `json:"thread"`
	Err        *uint32         `json:"err"`
}

type textProcess struct {
	PID              *uint32  `json:"pid"`
	PPID             *uint32  `json:"ppid"`
	UID              *uint32  `json:"uid"`
	User             string   `json:"user"`
	Comm             string   `json:"comm"`
	Exe              string   `json:"exe"`
	Cmdline          []string `json:"cmdline"`
	CmdlineTruncated bool     `json:"cmdline_truncated"`
	ContainerID      string   `json:"container_id"`
	PreviousExe      string   `json:"previous_exe"`
	DurationNs       *int64   `json:"duration_ns"`
	Gone             bool     `json:"gone"`
	Skipped          bool     `json:"skipped"`
	Stale            bool     `json:"stale"`
	Missing          []string `json:"missing"`
}

type textParent struct {
	PID *uint32 `json:"pid"`
	Exe string  `json:"exe"`
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

// visibleWidth counts the runes of b that take a column: ANSI colour
// sequences take none.
func visibleWidth(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		if b[i] == 0x1b {
			for i < len(b) && b[i] != 'm' {
				i++
			}
			i++
			continue
		}
		_, size := utf8.DecodeRune(b[i:])
		i += size
		n++
	}
	return n
}

// cut shortens s to at most n runes, the last one "…" when it cut.
func cut(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n-1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i] + "…"
}

// processText is exe and arguments when enriched, else comm when the event
// carries one.
func processText(p *textProc, pr *textProcess) string {
	switch {
	case pr == nil:
		if p.Comm != nil {
			return quoteArg(*p.Comm)
		}
		return ""
	case pr.Skipped:
		return "(not enriched)"
	case pr.Gone && pr.Exe == "" && pr.Comm == "":
		return "(gone before it could be read)"
	}
	var b strings.Builder
	args := pr.Cmdline
	switch {
	case pr.Exe != "" && len(args) > 0:
		// Show the exe path, then the arguments after argv[0] (argv[0]
		// only when it is not the exe's own name).
		b.WriteString(quoteArg(pr.Exe))
		if base := args[0]; base != pr.Exe && base != lastElem(pr.Exe) {
			b.WriteString(" [")
			b.WriteString(quoteArg(base))
			b.WriteString("]")
		}
		args = args[1:]
	case pr.Exe != "":
		b.WriteString(quoteArg(pr.Exe))
	case len(args) > 0:
		b.WriteString(quoteArg(args[0]))
		args = args[1:]
	case pr.Comm != "":
		b.WriteString("[" + quoteArg(pr.Comm) + "]")
	}
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(quoteArg(a))
	}
	if pr.CmdlineTruncated {
		b.WriteString(" …")
	}
	if pr.ContainerID != "" {
		id := pr.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		b.WriteString("  container=" + id)
	}
	if pr.Stale {
		b.WriteString("  (stale)")
	}
	var unread []string
	for _, m := range pr.Missing {
		if m == "exe" || m == "cmdline" {
			unread = append(unread, m)
		}
	}
	if len(unread) > 0 {
		b.WriteString("  (unread: " + strings.Join(unread, ", ") + ")")
	}
	return b.String()
}

// eventDetail is what an event says besides its process.
func eventDetail(p *textProc, pr *textProcess) string {
	switch p.Event {
	case "fork":
		if p.Thread {
			return "thread"
		}
	case "exec":
		if pr != nil && pr.PreviousExe != "" {
			return "was " + quoteArg(pr.PreviousExe)
		}
	case "exit":
		if p.Thread {
			return "thread"
		}
	case "uid":
		return "ruid=" + optUint(p.RUID) + " euid=" + optUint(p.EUID)
	case "gid":
		return "rgid=" + optUint(p.RGID) + " egid=" + optUint(p.EGID)
	case "ptrace":
		if p.TracerPID != nil && *p.TracerPID == 0 {
			return "detached"
		}
		return "tracer=" + optUint(p.TracerPID)
	case "comm":
		if pr != nil && p.Comm != nil {
			return "comm=" + quoteArg(*p.Comm)
		}
	case "none":
		return "ack err=" + optUint(p.Err)
	}
	return ""
}

// exitText is the exit column: the exit status, or the signal with "+core"
// when it dumped core.
func exitText(p *textProc) string {
	if p.ExitStatus != nil {
		return strconv.FormatInt(*p.ExitStatus, 10)
	}
	if len(p.Signal) > 0 {
		s := strings.Trim(string(p.Signal), `"`)
		if p.CoreDumped {
			s += "+core"
		}
		return s
	}
	return ""
}

func lossText(l *textLine) string {
	s := fmt.Sprintf("%d messages lost on %d.%d", l.Lost, l.Idx, l.Val)
	if l.CPU != nil {
		s += fmt.Sprintf(" cpu %d", *l.CPU)
	}
	if l.Lost == 1 {
		s = strings.Replace(s, "messages", "message", 1)
	}
	return s + fmt.Sprintf(" (seq %d..%d)", l.FromSeq, l.ToSeq)
}

func gapText(l *textLine) string {
	s := "not listening"
	if l.Reason != "" && l.Reason != "not_listening" {
		s = quoteArg(l.Reason)
	}
	if from, to := rawText(l.From), rawText(l.To); from != "" || to != "" {
		s += " from " + quoteArg(from) + " to " + quoteArg(to)
	}
	if l.PIDsAllocated != nil {
		s += fmt.Sprintf(", %d pids allocated meanwhile", *l.PIDsAllocated)
	}
	return s
}

func rawText(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

func optUint(v *uint32) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*v), 10)
}

// formatDuration is short and readable: 850µs, 12ms, 1.25s, 3m05s, 2h07m.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 100*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// quoteArg shows an argument so that spaces and control characters cannot
// fake columns or lines: plain words as they are, anything else quoted with
// Go escapes.
func quoteArg(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == utf8.RuneError || r <= ' ' || r == '"' || r == '\\' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return strconv.Quote(s)
		}
	}
	return s
}

func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// pad appends s and spaces to width, then one space.
func pad(dst []byte, s string, width int) []byte {
	dst = append(dst, s...)
	for n := utf8.RuneCountInString(s); n < width; n++ {
		dst = append(dst, ' ')
	}
	return append(dst, ' ')
}

// padLeft appends s right-aligned in width, then one space.
func padLeft(dst []byte, s string, width int) []byte {
	for n := utf8.RuneCountInString(s); n < width; n++ {
		dst = append(dst, ' ')
	}
	dst = append(dst, s...)
	return append(dst, ' ')
}
