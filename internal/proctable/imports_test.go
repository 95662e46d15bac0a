package proctable

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure: the process table, the LRU it keeps its entries in and the
// event data model it describes events for import no I/O package; /proc
// is read by procinfo, outside them.
func TestPure(t *testing.T) {
	banned := []string{"os", "net", "syscall", "io/fs", "os/exec", "golang.org/x/sys/", "go.uber.org/zap",
		"github.com/cnbridged/cnbridged/internal/procinfo", "github.com/nats-io/"}
	for _, dir := range []string{".", "../lru", "../event", "../fields"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range ast.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, b := range banned {
					if path == b || strings.HasSuffix(b, "/") && strings.HasPrefix(path, b) {
						t.Errorf("%s imports %s: the package must do no I/O", f, path)
					}
				}
			}
		}
	}
}
