package top

import (
	"time"

	tea "charm.land/bubbletea/v2"
)

// Model is the bubbletea model of "cnbridged top": it samples every
// Interval and draws Render of the last two samples.
type Model struct {
	src           Sampler
	interval      time.Duration
	styles        Styles
	prev, cur     Sample
	err           error
	width, height int
}

type sampleMsg struct {
	s   Sample
	err error
}

// NewModel returns a model sampling src every interval.
func NewModel(src Sampler, interval time.Duration, st Styles) Model {
	return Model{src: src, interval: interval, styles: st}
}

func (m Model) sample() tea.Msg {
	s, err := m.src.Sample()
	return sampleMsg{s, err}
}

// Init takes the first sample.
func (m Model) Init() tea.Cmd { return m.sample }

// Update handles samples, the window size and keys (q, esc, ctrl+c quit).
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case sampleMsg:
		m.err = msg.err
		if msg.err == nil {
			m.prev, m.cur = m.cur, msg.s
		}
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return m.sample() })
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "esc", "ctrl+c":
			return m, tea.Quit
		}
	}
	return m, nil
}

// View renders the current frame, full screen.
func (m Model) View() tea.View {
	v := Compute(m.src.Name(), m.prev, m.cur)
	if m.err != nil {
		v.Err = m.err.Error()
	}
	tv := tea.NewView(Render(v, m.styles, m.width, m.height))
	tv.AltScreen = true
	return tv
}
