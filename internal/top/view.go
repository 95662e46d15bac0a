package top

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
)

// Event columns; every other event type is counted under "other".
var eventCols = []string{"fork", "exec", "exit"}

// HostRow is one host's rates.
type HostRow struct {
	Host   string
	Total  float64            // events/s
	ByType map[string]float64 // events/s by column ("other" for the rest)
	Lost   float64            // cumulative
	LostPS float64
}

// SinkRow is one sink's rates and queue.
type SinkRow struct {
	Name                 string
	SentPS               float64
	Dropped, DroppedPS   float64
	Failed               float64
	QueueLen, QueueCap   float64
	Fill                 float64 // 0..1
	HasQueue, HasDropped bool
}

// View is what one frame shows.
type View struct {
	Source      string
	Time        time.Time
	Interval    time.Duration // between the two samples; 0 before the second
	Hosts       []HostRow
	Sinks       []SinkRow
	KernelDrops float64
	Local       bool
	Err         string
}

// Compute turns two samples into rates (prev may be the zero Sample: then
// the view has totals but no rates yet).
func Compute(source string, prev, cur Sample) View {
	v := View{Source: source, Time: cur.Time, KernelDrops: cur.KernelDrops, Local: cur.Local}
	dt := 0.0
	if !prev.Time.IsZero() && cur.Time.After(prev.Time) {
		v.Interval = cur.Time.Sub(prev.Time)
		dt = v.Interval.Seconds()
	}
	rate := func(c, p float64) float64 {
		if dt == 0 || c < p { // a restarted daemon's counters start again
			return 0
		}
		return (c - p) / dt
	}
	hosts := map[string]*HostRow{}
	row := func(h string) *HostRow {
		if r, ok := hosts[h]; ok {
			return r
		}
		r := &HostRow{Host: h, ByType: map[string]float64{}}
		hosts[h] = r
		return r
	}
	for k, c := range cur.Events {
		r := row(k.Host)
		ps := rate(c, prev.Events[k])
		col := "other"
		for _, e := range eventCols {
			if k.Event == e {
				col = e
			}
		}
		r.ByType[col] += ps
		r.Total += ps
	}
	for h, c := range cur.Lost {
		r := row(h)
		r.Lost, r.LostPS = c, rate(c, prev.Lost[h])
	}
	for _, h := range sortedKeys(hosts) {
		v.Hosts = append(v.Hosts, *hosts[h])
	}
	for _, name := range sortedKeys(cur.Sinks) {
		c, p := cur.Sinks[name], prev.Sinks[name]
		r := SinkRow{Name: name, SentPS: rate(c.Sent, p.Sent), Dropped: c.Dropped, DroppedPS: rate(c.Dropped, p.Dropped),
			Failed: c.Failed, QueueLen: c.QueueLen, QueueCap: c.QueueCap, HasQueue: c.QueueCap > 0}
		if r.HasQueue {
			r.Fill = min(c.QueueLen/c.QueueCap, 1)
		}
		v.Sinks = append(v.Sinks, r)
	}
	return v
}

// Styles are the frame's styles. Building them touches no terminal: the
// program that draws the frame fits its escape codes to the terminal it
// writes to (colours dropped without one, or with NO_COLOR).
type Styles struct {
	Title, Header, Alert, Dim lipgloss.Style
}

// NewStyles returns the frame's styles, or plain ones (no escape codes at
// all) when styled is false.
func NewStyles(styled bool) Styles {
	if !styled {
		return Styles{}
	}
	return Styles{
		Title:  lipgloss.NewStyle().Bold(true).Reverse(true),
		Header: lipgloss.NewStyle().Bold(true).Underline(true),
		Alert:  lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("1")),
		Dim:    lipgloss.NewStyle().Faint(true),
	}
}

// Render draws v in width×height cells. It is pure: the same view and size
// give the same text.
func Render(v View, st Styles, width, height int) string {
	if width <= 0 {
		width = 100
	}
	var lines []string
	add := func(s string) { lines = append(lines, s) }
	when := "no sample yet" // not a made-up 00:00:00
	if !v.Time.IsZero() {
		when = v.Time.UTC().Format("15:04:05 UTC")
	}
	title := fmt.Sprintf("cnbridged top  %s  %s", v.Source, when)
	add(st.Title.Render(pad(title, width)))
	if v.Err != "" {
		add(st.Alert.Render(clip("error: "+v.Err, width)))
	}
	switch {
	case v.Time.IsZero():
		add(st.Dim.Render(clip("trying again every interval   q: quit", width)))
	case v.Interval == 0:
		add(st.Dim.Render(clip("rates after the next sample…", width)))
	default:
		add(st.Dim.Render(clip(fmt.Sprintf("rates over the last %s   q: quit", v.Interval.Round(time.Millisecond)), width)))
	}
	add("")
	hdr := fmt.Sprintf("%-16s %10s", "HOST", "EVENTS/s")
	for _, e := range eventCols {
		hdr += fmt.Sprintf(" %9s", e+"/s")
	}
	hdr += fmt.Sprintf(" %9s %10s %8s", "other/s", "LOST", "LOST/s")
	add(st.Header.Render(clip(hdr, width)))
	var sum HostRow
	for _, h := range v.Hosts {
		s := fmt.Sprintf("%-16s %10.1f", clip(h.Host, 16), h.Total)
		for _, e := range append(eventCols, "other") {
			s += fmt.Sprintf(" %9.1f", h.ByType[e])
		}
		s += fmt.Sprintf(" %10.0f %8.1f", h.Lost, h.LostPS)
		if h.Lost > 0 {
			s = st.Alert.Render(clip(s, width))
		} else {
			s = clip(s, width)
		}
		add(s)
		sum.Total += h.Total
		sum.Lost += h.Lost
	}
	if len(v.Hosts) > 1 {
		add(clip(fmt.Sprintf("%-16s %10.1f %*s %10.0f", fmt.Sprintf("all (%d hosts)", len(v.Hosts)), sum.Total, 9*4+3, "", sum.Lost), width))
	}
	if v.Local {
		add("")
		add(st.Header.Render(clip(fmt.Sprintf("%-16s %10s %10s %10s %8s %17s %6s", "SINK", "SENT/s", "DROPPED", "DROPPED/s", "FAILED", "QUEUE", "FILL"), width)))
		for _, s := range v.Sinks {
			q, fill := "-", ""
			if s.HasQueue {
				q = fmt.Sprintf("%.0f/%.0f", s.QueueLen, s.QueueCap)
				fill = fmt.Sprintf("%5.1f%% %s", 100*s.Fill, bar(s.Fill, 10))
			}
			line := clip(fmt.Sprintf("%-16s %10.1f %10.0f %10.1f %8.0f %17s %s", clip(s.Name, 16), s.SentPS, s.Dropped, s.DroppedPS, s.Failed, q, fill), width)
			if s.DroppedPS > 0 || s.Fill >= 0.9 {
				line = st.Alert.Render(line)
			}
			add(line)
		}
		add("")
		k := fmt.Sprintf("kernel socket drops: %.0f", v.KernelDrops)
		if v.KernelDrops > 0 {
			k = st.Alert.Render(k)
		}
		add(k)
	}
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	return strings.Join(lines, "\n")
}

func bar(f float64, n int) string {
	full := int(f*float64(n) + 0.5)
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", n-full) + "]"
}

func clip(s string, w int) string {
	if r := []rune(s); len(r) > w {
		return string(r[:w])
	}
	return s
}

func pad(s string, w int) string {
	s = clip(s, w)
	return s + strings.Repeat(" ", w-len([]rune(s)))
}
