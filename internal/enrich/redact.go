package enrich

import "regexp"

// Redacted replaces what redaction removes.
const Redacted = "*****"

// redact applies enrich_redact to args, in place of a copy.
func (e *Enricher) redact(args []string) []string {
	if len(e.o.Redact) == 0 {
		return args
	}
	for i, a := range args {
		args[i] = Redact(e.o.Redact, a)
	}
	return args
}

// Redact replaces, for each pattern in turn, the first capture group of
// every match in s by "*****". A pattern without a group changes nothing.
func Redact(patterns []*regexp.Regexp, s string) string {
	for _, re := range patterns {
		if re.NumSubexp() < 1 {
			continue
		}
		ms := re.FindAllStringSubmatchIndex(s, -1)
		if len(ms) == 0 {
			continue
		}
		out := make([]byte, 0, len(s))
		last := 0
		for _, m := range ms {
			if m[2] < 0 {
				continue
			}
			out = append(out, s[last:m[2]]...)
			out = append(out, Redacted...)
			last = m[3]
		}
		s = string(append(out, s[last:]...))
	}
	return s
}
