package proctable

import (
	"slices"
	"testing"
)

// TestExecLate: an exec's Late marks are those of its read; the next exec
// replaces them; a forked child inherits them with the image they
// describe.
func TestExecLate(t *testing.T) {
	tb := newTable(0)
	tb.Seed(&Observed{PID: 7, StartTicks: 1, Exe: "/bin/sh"})
	p := tb.Exec(7, 7, &Observed{Exe: "/bin/sleep", Cmdline: []string{"sleep"}, Late: []string{FieldCwd, FieldCgroup}}, false)
	if !slices.Equal(p.Late, []string{FieldCwd, FieldCgroup}) {
		t.Errorf("after a partly late exec: late %v, want [cwd cgroup]", p.Late)
	}
	child, _ := tb.Fork(7, 8, 8, 2_000_000_000)
	if child == nil || !slices.Equal(child.Late, p.Late) {
		t.Errorf("forked child: %+v, want the parent's late marks %v", child, p.Late)
	}
	p = tb.Exec(7, 7, &Observed{Exe: "/bin/true", Cmdline: []string{"true"}}, false)
	if p.Late != nil {
		t.Errorf("after an exec read in time: late %v, want none", p.Late)
	}
	p = tb.Exec(9, 9, &Observed{Gone: true, Late: []string{FieldCmdline, FieldExe}}, false)
	if !slices.Equal(p.Late, []string{FieldCmdline, FieldExe}) {
		t.Errorf("exec of an unknown process gone before the late read: late %v, want [cmdline exe]", p.Late)
	}
}
