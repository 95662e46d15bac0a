package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

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
	// suppressed (and From, To)
	Route    *int            `json:"route"`
	Key      json.RawMessage `json:"key"`
	Overflow bool            `json:"overflow"`
	Count    uint64          `json:"count"`
	// life
	Life *textLife `json:"life"`

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

type textLife struct {
	DurationNs *int64 `json:"duration_ns"`
	Execs      []struct {
		Exe string `json:"exe"`
	} `json:"execs"`
	ExecsDropped int64           `json:"execs_dropped"`
	Events       int64           `json:"events"`
	ExitStatus   *int64          `json:"exit_status"`
	Signal       json.RawMessage `json:"signal"`
	CoreDumped   bool            `json:"core_dumped"`
	Open         bool            `json:"open"`
	Evicted      bool            `json:"evicted"`
	ExitLost     bool            `json:"exit_lost"`
}

// lifeText is what a life record says besides its process: the images it
// ran, how many events it folds, and how it ended.
func lifeText(l *textLife) string {
	var exes []string
	for _, e := range l.Execs {
		exes = append(exes, quoteArg(lastElem(e.Exe)))
	}
	var parts []string
	if len(exes) > 0 {
		s := "execs: " + strings.Join(exes, " → ")
		if l.ExecsDropped > 0 {
			s += fmt.Sprintf(" (+%d)", l.ExecsDropped)
		}
		parts = append(parts, s)
	}
	parts = append(parts, plural(l.Events, "event"))
	switch {
	case l.Evicted:
		parts = append(parts, "(open, evicted: too many lives)")
	case l.Open:
		parts = append(parts, "(open: alive at stop)")
	case l.ExitLost:
		parts = append(parts, "(exit lost)")
	}
	return strings.Join(parts, "  ")
}

// suppressedText describes a suppression record: the route, the count,
// the key in the line's order, and the time span.
func suppressedText(l *textLine, clock func(string) string) string {
	route := "?"
	if l.Route != nil {
		route = strconv.Itoa(*l.Route)
	}
	s := fmt.Sprintf("route %s: %s over the rate limit not sent", route, plural(int64(l.Count), "record"))
	if l.Overflow {
		s += ", keys beyond max_keys"
	} else if key := keyText(l.Key); key != "" {
		s += ", " + key
	}
	if from, to := rawText(l.From), rawText(l.To); from != "" || to != "" {
		s += " (" + quoteArg(clock(from)) + ".." + quoteArg(clock(to)) + ")"
	}
	return s
}

// plural is "1 record", "2 records".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatInt(n, 10) + " " + what + "s"
}

// keyText is a key object as path=value pairs, in the line's order.
func keyText(raw json.RawMessage) string {
	d := json.NewDecoder(bytes.NewReader(raw))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	var parts []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			break
		}
		var v any
		if d.Decode(&v) != nil {
			break
		}
		ks, _ := k.(string)
		parts = append(parts, quoteArg(ks)+"="+quoteArg(fmt.Sprint(v)))
	}
	return strings.Join(parts, " ")
}

type textParent struct {
	PID *uint32 `json:"pid"`
	Exe string  `json:"exe"`
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
