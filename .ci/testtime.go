//go:build ignore

// testtime summarises `go test -json` output (.ci/timings runs it): the
// time of each package (the Elapsed of its final pass/fail/skip event),
// then the slowest top-level tests, "(parallel)" for those that called
// t.Parallel. With -base, a second `go test -json` file, it prints each
// package's time in both and the ratio instead.
//
//	go run .ci/testtime.go [-top N] [-base before.json] < after.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
}

type run struct {
	pkgs   map[string]float64
	result map[string]string
	tests  map[string]float64
	paused map[string]bool
	failed []string
}

func read(r io.Reader) (*run, error) {
	x := &run{pkgs: map[string]float64{}, result: map[string]string{}, tests: map[string]float64{}, paused: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a build error line, not JSON
		}
		done := e.Action == "pass" || e.Action == "fail" || e.Action == "skip"
		switch {
		case e.Test == "" && done:
			x.pkgs[e.Package] = e.Elapsed
			x.result[e.Package] = e.Action
		case e.Test != "" && done && !strings.Contains(e.Test, "/"):
			x.tests[e.Package+" "+e.Test] = e.Elapsed
			if e.Action == "fail" {
				x.failed = append(x.failed, e.Package+" "+e.Test)
			}
		case e.Test != "" && e.Action == "pause":
			x.paused[e.Package+" "+e.Test] = true
		}
	}
	return x, sc.Err()
}

func short(pkg string) string {
	return strings.TrimPrefix(pkg, "github.com/cnbridged/cnbridged/")
}

func byTime(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	return keys
}

func main() {
	top := flag.Int("top", 30, "how many of the slowest tests to list")
	base := flag.String("base", "", "a go test -json file to compare with")
	flag.Parse()
	after, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testtime:", err)
		os.Exit(1)
	}
	if *base != "" {
		f, err := os.Open(*base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtime:", err)
			os.Exit(1)
		}
		before, err := read(f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtime:", err)
			os.Exit(1)
		}
		all := map[string]float64{}
		for p, s := range before.pkgs {
			all[p] = s
		}
		for p, s := range after.pkgs {
			all[p] = max(all[p], s)
		}
		fmt.Printf("| package | before (s) | after (s) | after/before |\n|---|---:|---:|---:|\n")
		var sb, sa float64
		for _, p := range byTime(all) {
			b, a := before.pkgs[p], after.pkgs[p]
			sb, sa = sb+b, sa+a
			ratio := "–"
			if b > 0.05 {
				ratio = fmt.Sprintf("%.2f", a/b)
			}
			fmt.Printf("| %s | %.1f | %.1f | %s |\n", short(p), b, a, ratio)
		}
		fmt.Printf("| sum (packages run 2 at a time: wall is less) | %.1f | %.1f | %.2f |\n", sb, sa, sa/sb)
		return
	}
	var sum float64
	fmt.Printf("%-44s %8s\n", "package", "seconds")
	for _, p := range byTime(after.pkgs) {
		sum += after.pkgs[p]
		fmt.Printf("%-44s %8.1f %s\n", short(p), after.pkgs[p], after.result[p])
	}
	fmt.Printf("%-44s %8.1f (packages run 2 at a time: wall is less)\n\n", "sum", sum)
	names := byTime(after.tests)
	if len(names) > *top {
		names = names[:*top]
	}
	fmt.Printf("%-72s %8s\n", "slowest tests", "seconds")
	for _, k := range names {
		par := ""
		if after.paused[k] {
			par = " (parallel)"
		}
		fmt.Printf("%-72s %8.1f%s\n", short(k), after.tests[k], par)
	}
	if len(after.failed) > 0 {
		fmt.Printf("\nfailed: %s\n", strings.Join(after.failed, ", "))
	}
}
