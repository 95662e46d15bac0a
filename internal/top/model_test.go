package top

import (
	"errors"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
)

// TestModel: samples become the frame, a failed scrape is shown above the
// last good one, and q quits.
func TestModel(t *testing.T) {
	prev, cur := recorded(t)
	m := tea.Model(NewModel(&replay{}, 0, plainStyles()))
	m, _ = m.Update(tea.WindowSizeMsg{Width: 100, Height: 40})
	m, _ = m.Update(sampleMsg{s: prev})
	m, cmd := m.Update(sampleMsg{s: cur})
	if cmd == nil {
		t.Error("no next sample scheduled")
	}
	frame := m.View().Content
	if !strings.Contains(frame, "rates over the last 2s") || !strings.Contains(frame, "web1") {
		t.Errorf("frame after two samples:\n%s", frame)
	}
	m, _ = m.Update(sampleMsg{err: errors.New("scraping http://127.0.0.1:9464/metrics: connection refused")})
	if f := m.View().Content; !strings.Contains(f, "error: scraping") || !strings.Contains(f, "web1") {
		t.Errorf("frame after a failed scrape:\n%s", f)
	}
	_, cmd = m.Update(tea.KeyPressMsg{Code: 'q', Text: "q"})
	if cmd == nil {
		t.Fatal("q: no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q does not quit")
	}
}
