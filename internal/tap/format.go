package tap

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
)

// ANSI colours, used only on a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
	ansiBold   = "\x1b[1;31m"
)

// Formatter writes lines as aligned columns, like forkstat:
//
//	TIME          HOST     EVENT    PID     PPID    UID    EXIT   DURATION  COMMAND
//
// COMMAND is the command line when the daemon enriched the event, else the
// executable, else the command name. Markers print their event in the
// EVENT column and what they say in COMMAND. A Formatter belongs to one
// goroutine; the host column widens to the longest host seen.
//
// Every string a line carries (host, event, command line arguments one by
// one, exe, comm, marker fields) is shown as the text format shows it
// (event.QuoteArg): quoted with Go escapes when it holds a space or a
// control character, so that no process, and no publisher on a NATS
// subject, can write terminal escape codes to whoever runs the tap.
type Formatter struct {
	Color bool
	// Local shows times in the local time zone (else UTC).
	Local bool
	hostW int
}

// Header returns the column titles.
func (f *Formatter) Header() string {
	return f.row("TIME", "HOST", "EVENT", "PID", "PPID", "UID", "EXIT", "DURATION", "COMMAND", "")
}

// Format returns l as one line of columns, with a newline.
func (f *Formatter) Format(l *Line) string {
	t := l.Time
	if ts, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
		if f.Local {
			ts = ts.Local()
		} else {
			ts = ts.UTC()
		}
		t = ts.Format("15:04:05.000")
	}
	if l.IsMarker() {
		return f.row(t, l.Host, l.Type, "", "", "", "", "", markerText(l), ansiBold)
	}
	ev := l.Event()
	pid, ppid, uid := optU32(l.PID()), optU32(l.PPID()), optU32(l.UID())
	exit, color := "", eventColor(ev)
	if l.Proc != nil {
		switch {
		case l.Proc.ExitStatus != nil:
			exit = strconv.Itoa(*l.Proc.ExitStatus)
			if *l.Proc.ExitStatus != 0 {
				color = ansiRed
			}
		case len(l.Proc.Signal) > 0:
			exit = quote(strings.Trim(string(l.Proc.Signal), `"`))
			if l.Proc.CoreDumped {
				exit += "+core"
			}
			color = ansiRed
		}
		if l.Proc.Thread {
			ev += "/t"
		}
	}
	dur := ""
	if l.Process != nil && l.Process.DurationNs != nil {
		dur = formatDuration(time.Duration(*l.Process.DurationNs))
	}
	return f.row(t, l.Host, ev, pid, ppid, uid, exit, dur, command(l), color)
}

// row lays out the columns; t, host and ev come from the line and are
// quoted here, cmd is quoted by its maker.
func (f *Formatter) row(t, host, ev, pid, ppid, uid, exit, dur, cmd, color string) string {
	t, host, ev = quote(t), quote(host), quote(ev)
	f.hostW = max(f.hostW, len(host), 8)
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s  %-*s  ", t, f.hostW, host)
	if f.Color && color != "" {
		fmt.Fprintf(&b, "%s%-9s%s", color, ev, ansiReset)
	} else {
		fmt.Fprintf(&b, "%-9s", ev)
	}
	fmt.Fprintf(&b, " %7s %7s %6s %6s %9s  ", pid, ppid, uid, exit, dur)
	if f.Color && color == ansiBold {
		b.WriteString(ansiBold + cmd + ansiReset)
	} else {
		b.WriteString(cmd)
	}
	return strings.TrimRight(b.String(), " ") + "\n"
}

// quote is event.QuoteArg, except that an absent value stays empty (an
// empty command line argument still shows as "").
func quote(s string) string {
	if s == "" {
		return ""
	}
	return event.QuoteArg(s)
}

func eventColor(ev string) string {
	switch ev {
	case "fork":
		return ansiCyan
	case "exec":
		return ansiGreen
	case "exit":
		return ansiYellow
	}
	return ansiBlue
}

func optU32(v uint32, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatUint(uint64(v), 10)
}

// command is the command line, else the executable, else the comm (in
// square brackets, as ps shows names it has no command line for).
func command(l *Line) string {
	if l.Process != nil {
		if len(l.Process.Cmdline) > 0 {
			args := make([]string, len(l.Process.Cmdline))
			for i, a := range l.Process.Cmdline {
				args[i] = event.QuoteArg(a)
			}
			return strings.Join(args, " ")
		}
		if l.Process.Exe != "" {
			return quote(l.Process.Exe)
		}
	}
	if c := l.Comm(); c != "" {
		return "[" + quote(c) + "]"
	}
	return ""
}

func markerText(l *Line) string {
	switch l.Type {
	case TypeLoss:
		return fmt.Sprintf("LOST %d messages of %d.%d (seq %d..%d)", l.Lost, l.Idx, l.Val, l.FromSeq, l.ToSeq)
	case TypeGap:
		from, to := quote(l.From), quote(l.To)
		s := fmt.Sprintf("GAP: not listening from %s to %s", from, to)
		if l.Reason != "" && l.Reason != "not_listening" {
			s = fmt.Sprintf("GAP (%s) from %s to %s", quote(l.Reason), from, to)
		}
		if l.PIDsAllocated != nil {
			s += fmt.Sprintf(", %d pids allocated meanwhile", *l.PIDsAllocated)
		}
		return s
	case TypeExitLost:
		if l.Process != nil {
			return fmt.Sprintf("EXIT LOST for pid %d %s", l.Process.PID, command(l))
		}
		return "EXIT LOST"
	case TypeDropped:
		return fmt.Sprintf("TAP DROPPED %d lines: this reader was too slow", l.Dropped)
	}
	return strings.ToUpper(quote(l.Type))
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
