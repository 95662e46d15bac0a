package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseYAML decodes the file into a map, recording each key's line.
func (ld *loader) parseYAML(data []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(err)
	}
	ld.pos = map[string]int{}
	if len(doc.Content) == 0 {
		return map[string]any{}, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of keys (host:, listener:, sinks:, routes:, …), not %s", root.Line, kindName(root))
	}
	for _, d := range index(root, "", ld.pos) {
		ld.probs = append(ld.probs, Problem{Key: d.key, Source: fmt.Sprintf("%s:%d", ld.path, d.line), Msg: d.msg()})
	}
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// yamlParserProblems are the libyaml parser (not scanner) errors. For
// them yaml/v3 reports the 0-based line of the construct the error is in
// (or no line for the first one), so the 1-based line is one more.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected node content",
	"found undefined tag handle",
}

// yamlError rewrites a syntax error as "line N: problem" with N counted
// from 1.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, after
			}
		}
	}
	if slices.Contains(yamlParserProblems, msg) {
		line++
	}
	if line == 0 {
		return fmt.Errorf("YAML syntax: %s", msg)
	}
	return fmt.Errorf("line %d: YAML syntax: %s", line, msg)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

// duplicate is a key given twice in one mapping.
type duplicate struct {
	key         string
	line, first int
	spelt       string // the first one's spelling, when it differs
}

func (d duplicate) msg() string {
	if d.spelt != "" {
		return fmt.Sprintf("given twice: also %q at line %d (keys are not case-sensitive)", d.spelt, d.first)
	}
	return fmt.Sprintf("given twice: also at line %d", d.first)
}

// index records the line of every key and list element under n, and
// returns the keys a mapping has twice (keys are not case-sensitive, as
// the config is not). The second of each is removed from n, so that the
// rest of the file still decodes and its problems are reported too.
func index(n *yaml.Node, prefix string, pos map[string]int) []duplicate {
	var dups []duplicate
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]*yaml.Node{}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := strings.ToLower(k.Value)
			if prefix != "" {
				key = prefix + "." + key
			}
			if first, ok := seen[key]; ok {
				d := duplicate{key: key, line: k.Line, first: first.Line}
				if first.Value != k.Value {
					d.spelt = first.Value
				}
				dups = append(dups, d)
				continue
			}
			seen[key] = k
			kept = append(kept, k, val)
			pos[key] = k.Line
			dups = append(dups, index(val, key, pos)...)
		}
		n.Content = kept
	case yaml.SequenceNode:
		for i, e := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			pos[key] = e.Line
			dups = append(dups, index(e, key, pos)...)
		}
	}
	return dups
}
