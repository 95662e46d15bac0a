package where_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/where"
)

// fieldsTable renders the names an expression can read as README's
// table: one row per object, its members with their types.
func fieldsTable(env *where.Env) string {
	types := map[string]string{}
	var groups []string
	members := map[string][]string{}
	for _, f := range env.Fields() {
		types[f.Path] = f.Type
		parent, name := "", f.Path
		if i := strings.LastIndex(f.Path, "."); i >= 0 {
			parent, name = f.Path[:i], f.Path[i+1:]
		}
		if _, ok := members[parent]; !ok {
			groups = append(groups, parent)
		}
		members[parent] = append(members[parent], "`"+name+"` "+f.Type)
	}
	var b strings.Builder
	b.WriteString("| object | members and their types |\n|---|---|\n")
	for _, g := range groups {
		label := "the record (variables)"
		switch {
		case g == "":
		case strings.HasPrefix(types[g], "list("):
			label = "`" + g + "[]` (" + strings.TrimSuffix(strings.TrimPrefix(types[g], "list("), ")") + ")"
		default:
			label = "`" + g + "` (" + types[g] + ")"
		}
		b.WriteString("| " + label + " | " + strings.Join(members[g], ", ") + " |\n")
	}
	return b.String()
}

// TestREADMEFields: README's list of names is the model's, so that it
// cannot drift; its examples compile.
func TestREADMEFields(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	env, err := where.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)<!-- where-fields -->\n(.*?)<!-- /where-fields -->`).FindSubmatch(readme)
	if block == nil {
		t.Fatal("README has no <!-- where-fields --> block")
	}
	if diff := cmp.Diff(fieldsTable(env), string(block[1])); diff != "" {
		t.Errorf("README's field table differs from the model (-model +README):\n%s\nthe table:\n%s", diff, fieldsTable(env))
	}
	examples := regexp.MustCompile(`(?m)^    where: '(.*)'$`).FindAllSubmatch(readme, -1)
	if len(examples) < 5 {
		t.Fatalf("README has %d where examples, want at least 5", len(examples))
	}
	for _, ex := range examples {
		expr := strings.ReplaceAll(string(ex[1]), "''", "'") // YAML single quotes
		if _, err := env.Compile(expr); err != nil {
			t.Errorf("README's example %s: %v", expr, err)
		}
	}
}

func TestPrintFieldsTable(t *testing.T) {
	if os.Getenv("PRINT_FIELDS") == "" {
		t.Skip("set PRINT_FIELDS=1 to print README's table")
	}
	env, _ := where.NewEnv()
	t.Log("\n" + fieldsTable(env))
}
