package proctable

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cnbridged/cnbridged/internal/"

// parseDir parses the non-test Go files of dir (a directory of
// internal/), with mode.
func parseDir(t *testing.T, dir string, mode parser.Mode) map[string]*ast.File {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in internal/%s: %v", dir, err)
	}
	out := map[string]*ast.File{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, mode)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = ast
	}
	return out
}

func imports(f *ast.File) []string {
	var out []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		out = append(out, path)
	}
	return out
}

// TestPure: the process table, the LRU it keeps its entries in, the
// process values (proc) and the event data model it describes events for
// import no I/O package; /proc is read by procinfo, outside them.
func TestPure(t *testing.T) {
	banned := []string{"os", "net", "syscall", "io/fs", "os/exec", "golang.org/x/sys/", "go.uber.org/zap",
		module + "procinfo", "github.com/nats-io/"}
	for _, dir := range []string{"proctable", "proc", "lru", "event", "fields"} {
		for f, ast := range parseDir(t, dir, parser.ImportsOnly) {
			for _, path := range imports(ast) {
				for _, b := range banned {
					if path == b || strings.HasSuffix(b, "/") && strings.HasPrefix(path, b) {
						t.Errorf("%s imports %s: the package must do no I/O", f, path)
					}
				}
			}
		}
	}
}

// layers are the import rules between cnbridged's own packages: a package
// must not import the packages above it. Each rule says why.
var layers = []struct {
	pkg    string
	banned []string // packages of internal/; "*": every one
	why    string
}{
	{"cnmsg", []string{"*"}, "wire decoding is the bottom layer: pure, it imports none of ours"},
	{"proc", []string{"*"}, "the values that describe a process sit beneath the table that keeps them and the records that carry them"},
	{"event", []string{"proctable", "procinfo", "listener", "bridge", "sinks", "config", "daemon"},
		"the record model and its encoders take process values from proc, not from the table or the stages that fill them"},
	{"router", []string{"*cnmsg"}, "the router is pure: a table over decoded messages"},
	{"listener", []string{"*cnmsg"}, "the listener only does socket I/O, handing on cnmsg.Datagram batches"},
	{"bridge", []string{"listener", "sinks", "config", "daemon"},
		"the per-message path sees datagrams (cnmsg.Datagram), not the socket; its targets are an interface, its plan built by the daemon"},
	{"bridge", []string{"proctable", "procinfo"}, "the process table and /proc reads are the enricher's stage"},
	{"config", []string{"daemon", "bridge", "listener"}, "config is parsed once into typed values that the stages receive"},
}

// knownExceptions are imports a rule bans that stay for now, each with
// the reason. One that no longer occurs fails the test: remove it.
var knownExceptions = []struct{ pkg, imp, why string }{
	{"bridge", "proctable", "the enricher (enrich*.go) still lives in bridge; it moves to a package of its own (issue 25), being rewired now"},
	{"bridge", "procinfo", "the enricher (enrich*.go) and the reader's exec capture (capture.go) read /proc from bridge until the enricher moves (issue 25)"},
}

// TestLayers: no package imports a package above it (layers), but for
// the known exceptions.
func TestLayers(t *testing.T) {
	used := map[[2]string]bool{}
	for _, l := range layers {
		for f, ast := range parseDir(t, l.pkg, parser.ImportsOnly) {
			for _, path := range imports(ast) {
				imp, ours := strings.CutPrefix(path, module)
				if !ours || !bannedIn(l.banned, imp) {
					continue
				}
				if i := slices.IndexFunc(knownExceptions, func(e struct{ pkg, imp, why string }) bool {
					return e.pkg == l.pkg && e.imp == imp
				}); i >= 0 {
					used[[2]string{l.pkg, imp}] = true
					continue
				}
				t.Errorf("%s imports internal/%s: %s", f, imp, l.why)
			}
		}
	}
	for _, e := range knownExceptions {
		if !used[[2]string{e.pkg, e.imp}] {
			t.Errorf("known exception %s → %s no longer occurs: remove it from knownExceptions", e.pkg, e.imp)
		}
	}
}

// bannedIn reports whether imp is banned: named, or "*" (all) or
// "*name" (all but name).
func bannedIn(banned []string, imp string) bool {
	for _, b := range banned {
		switch {
		case b == "*":
			return true
		case strings.HasPrefix(b, "*"):
			return imp != b[1:]
		case b == imp || strings.HasPrefix(imp, b+"/"):
			return true
		}
	}
	return false
}

// TestConfigUsesSinkDeclarations: config imports sinks because each sink
// type owns its keys (its config struct, defaults and validation live
// beside the sink, and config composes them through the sink type table);
// so config cannot do without sinks, but it uses only their
// declarations: types, constants, the type table (Types, TypeNames) and
// SubjectToken (a pure string function). It never builds, runs or probes
// a sink: no other function or variable of sinks.
func TestConfigUsesSinkDeclarations(t *testing.T) {
	kinds := map[string]string{} // sinks' top-level names → type, const, var, func
	for _, f := range parseDir(t, "sinks", parser.SkipObjectResolution) {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					kinds[d.Name.Name] = "func"
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						kinds[s.Name.Name] = "type"
					case *ast.ValueSpec:
						for _, n := range s.Names {
							kinds[n.Name] = strings.ToLower(d.Tok.String())
						}
					}
				}
			}
		}
	}
	allowedFuncs := []string{"Types", "TypeNames", "SubjectToken"}
	n := 0
	for f, file := range parseDir(t, "config", 0) {
		if !slices.Contains(imports(file), module+"sinks") {
			continue
		}
		ast.Inspect(file, func(node ast.Node) bool {
			sel, ok := node.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || id.Name != "sinks" || id.Obj != nil { // Obj: a local named sinks
				return true
			}
			n++
			switch kind := kinds[sel.Sel.Name]; {
			case kind == "type", kind == "const":
			case kind == "func" && slices.Contains(allowedFuncs, sel.Sel.Name):
			default:
				t.Errorf("%s uses sinks.%s (a %s): config uses only sinks' declarations (types, constants, %s)", f, sel.Sel.Name, kind, strings.Join(allowedFuncs, ", "))
			}
			return true
		})
	}
	if n == 0 {
		t.Fatal("config names nothing of sinks: the rule checks nothing (drop it, and ban sinks from config in layers)")
	}
}
