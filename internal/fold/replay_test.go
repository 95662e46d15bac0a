package fold_test

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/fold"
)

// TestReplay folds a file of JSON lines (FOLD_REPLAY=path, the output of
// an enriched route) and reports how many lines a fold: lifecycle route
// would have sent instead: a measurement, skipped without the variable.
func TestReplay(t *testing.T) {
	path := os.Getenv("FOLD_REPLAY")
	if path == "" {
		t.Skip("set FOLD_REPLAY to a file of JSON lines to measure what fold saves")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fo := fold.New()
	in, out, passed := 0, 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		r, err := fields.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", in+1, err)
		}
		in++
		folded, emit := fo.Add(r)
		if !folded {
			out++
			passed++
		}
		out += len(emit)
	}
	open := len(fo.Flush(time.Now().UnixNano()))
	out += open
	t.Logf("%d lines in, %d out (%d passed unchanged, %d lives, %d of them open at the end): %.2f× fewer", in, out, passed, fo.Emitted, open, float64(in)/float64(out))
}
