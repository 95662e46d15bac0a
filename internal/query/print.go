package query

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cnbridged/cnbridged/internal/event"
)

// Printer writes answers as they come: rows in the text format's columns
// with a HOST column (event.TextFormatter), trees indented, or with JSON
// the rows as the JSON lines they are; then a footer.
type Printer struct {
	Out  io.Writer
	JSON bool
	// Color and Width as for the text format (a terminal only).
	Color bool
	Width int

	header bool
	notes  []string // per-host notes for the footer, in arrival order
	infos  []*Answer
}

func (p *Printer) text() *event.TextFormatter {
	return &event.TextFormatter{Color: p.Color, Width: p.Width, Host: true, Location: time.Local}
}

// Answer prints one host's answer to op.
func (p *Printer) Answer(op string, a *Answer) {
	if a.Error != "" {
		p.notes = append(p.notes, fmt.Sprintf("%s: error %d: %s", a.Host, a.Code, a.Error))
		return
	}
	if t := a.Table; t != nil && t.Incomplete {
		p.notes = append(p.notes, fmt.Sprintf("%s: the process table is incomplete (%s): %s", a.Host, t.State, stateText(t.State)))
	}
	if a.Truncated {
		p.notes = append(p.notes, fmt.Sprintf("%s: truncated by %s: %d of %d rows", a.Host, a.TruncatedBy, len(a.Rows), a.Matched))
	}
	if a.EvalErrors > 0 {
		p.notes = append(p.notes, fmt.Sprintf("%s: the where expression failed on %d processes, which it did not select (first: %s; has() tests a member)",
			a.Host, a.EvalErrors, a.EvalError))
	}
	if op == OpInfo {
		if p.JSON {
			b, _ := json.Marshal(a)
			fmt.Fprintf(p.Out, "%s\n", b)
			return
		}
		p.infos = append(p.infos, a)
		return
	}
	if len(a.Rows) == 0 && (op == OpTree || op == OpLineage) {
		p.notes = append(p.notes, a.Host+": no such process in its table")
	}
	if p.JSON {
		for _, r := range a.Rows {
			fmt.Fprintf(p.Out, "%s\n", r)
		}
		return
	}
	f := p.text()
	if !p.header && len(a.Rows) > 0 {
		io.WriteString(p.Out, strings.Replace(f.TextHeader(), "EVENT", "STATE", 1))
		p.header = true
	}
	depths := map[string]int{}
	var buf []byte
	for _, r := range a.Rows {
		d := 0
		if op != OpPS {
			var ids struct {
				Process struct {
					EntityID string `json:"entity_id"`
				} `json:"process"`
				Parent struct {
					EntityID string `json:"entity_id"`
				} `json:"parent"`
			}
			if json.Unmarshal(r, &ids) == nil {
				if pd, ok := depths[ids.Parent.EntityID]; ok && ids.Parent.EntityID != "" {
					d = pd + 1
				}
				depths[ids.Process.EntityID] = d
			}
		}
		var err error
		if buf, err = f.AppendRow(buf[:0], r, d); err != nil {
			buf = append(buf[:0], "unreadable row: "+event.QuoteArg(string(r))+"\n"...)
		}
		p.Out.Write(buf)
	}
}

func stateText(state string) string {
	switch state {
	case "off":
		return "no route has enrich: true, so the table is not kept"
	case "seeding":
		return "its /proc scan has not run yet"
	case "resync":
		return "events were lost and the table is being reconciled with /proc: processes may be missing, or listed though gone"
	}
	return state
}

// Footer writes the info table (for info) and what the answers and the
// silence say: who answered, who should have and did not, what was cut.
func (p *Printer) Footer(w io.Writer, res *Result, timeout time.Duration) {
	if len(p.infos) > 0 {
		tw := tabwriter.NewWriter(p.Out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tVERSION\tTABLE\tPROCESSES\tTHREADS\tSEEDED\tOBSERVED\tEXITED\tEVICTED\tLOST\tSOCKET DROPS\tRESYNCS\tSTARTED")
		slices.SortFunc(p.infos, func(a, b *Answer) int { return strings.Compare(a.Host, b.Host) })
		for _, a := range p.infos {
			in := a.Info
			if in == nil {
				continue
			}
			state := "-"
			if a.Table != nil {
				state = a.Table.State
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", event.QuoteArg(a.Host), event.QuoteArg(in.Version), state,
				in.Processes, in.MaxEntries, in.Threads, in.Seeded, in.Observed, in.Exited, in.Evicted, in.Loss.MessagesLost, in.Loss.SocketDrops,
				in.Loss.Resyncs, in.Started)
		}
		tw.Flush()
	}
	var answered []string
	for _, a := range res.Answers {
		answered = append(answered, event.QuoteArg(a.Host))
	}
	slices.Sort(answered)
	line := fmt.Sprintf("answered: %d host(s)", len(answered))
	if len(answered) > 0 {
		line += ": " + strings.Join(answered, " ")
	}
	switch {
	case res.Elapsed > 0 && res.Bytes > 0:
		line += fmt.Sprintf(" (last after %s, %d bytes)", res.Elapsed.Round(100*time.Microsecond), res.Bytes)
	case res.Elapsed > 0:
		line += fmt.Sprintf(" (after %s)", res.Elapsed.Round(100*time.Microsecond))
	}
	fmt.Fprintln(w, line)
	switch {
	case len(res.Silent) > 0:
		quoted := make([]string, len(res.Silent))
		for i, h := range res.Silent {
			quoted[i] = event.QuoteArg(h)
		}
		fmt.Fprintf(w, "not answering within %s: %s (known from %s)\n", timeout, strings.Join(quoted, " "), inventoryText(res.Inventory))
	case res.Inventory == "" && !res.Targeted:
		why := "no inventory"
		if res.InventoryErr != nil {
			why = res.InventoryErr.Error()
		}
		fmt.Fprintf(w, "hosts that did not answer cannot be told (%s): name them with --expect\n", why)
	}
	for _, n := range p.notes {
		fmt.Fprintln(w, n)
	}
	if res.Unreadable > 0 {
		fmt.Fprintf(w, "%d answers were not readable (not cnbridged's)\n", res.Unreadable)
	}
}

func inventoryText(inv string) string {
	switch inv {
	case "kv":
		return "the inventory"
	case "expect":
		return "--expect"
	case "kv+expect":
		return "the inventory and --expect"
	}
	return "--host"
}
