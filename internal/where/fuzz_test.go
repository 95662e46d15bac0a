package where_test

import (
	"testing"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/where"
)

// FuzzWhere compiles arbitrary expression text and evaluates what
// compiles over arbitrary records: no panic, and the paths an expression
// reads are names of the model.
func FuzzWhere(f *testing.F) {
	for _, line := range []string{execLine, containerExec, plainFork, lossLine, `{}`} {
		for _, expr := range []string{
			`proc.event == "exec" && process.exe.endsWith("/curl") && has(process.container_id)`,
			`ancestors.exists(a, a.exe == "/usr/sbin/sshd")`,
			`process.?container_id.orValue("") == "" || process.cmdline[2] == "x"`,
			`has(record.type) && type == "loss" && lost > 0`,
			`process.cmdline.exists(a, a.matches("^-"))`,
			`parent.cmdline.map(a, a + "x").size() > 0`,
		} {
			f.Add(expr, line)
		}
	}
	env, err := where.NewEnv()
	if err != nil {
		f.Fatal(err)
	}
	names := map[string]bool{}
	for _, fl := range env.Fields() {
		names[fl.Path] = true
	}
	f.Fuzz(func(t *testing.T, expr, line string) {
		x, err := env.Compile(expr)
		if err != nil {
			return
		}
		for _, p := range x.Paths {
			if !names[p] {
				t.Errorf("Compile(%q): path %q is no name of the model", expr, p)
			}
		}
		r, err := fields.Parse([]byte(line))
		if err != nil {
			r = &fields.Record{}
		}
		_, _ = x.Eval(r)
	})
}
