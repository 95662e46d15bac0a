package event

import "unicode/utf8"

// visibleWidth counts the runes of b that take a column: ANSI colour
// sequences take none.
func visibleWidth(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		if b[i] == 0x1b {
			for i < len(b) && b[i] != 'm' {
				i++
			}
			i++
			continue
		}
		_, size := utf8.DecodeRune(b[i:])
		i += size
		n++
	}
	return n
}

// cut shortens s to at most n runes, the last one "…" when it cut.
func cut(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n-1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i] + "…"
}

// pad appends s and spaces to width, then one space.
func pad(dst []byte, s string, width int) []byte {
	dst = append(dst, s...)
	for n := utf8.RuneCountInString(s); n < width; n++ {
		dst = append(dst, ' ')
	}
	return append(dst, ' ')
}

// padLeft appends s right-aligned in width, then one space.
func padLeft(dst []byte, s string, width int) []byte {
	for n := utf8.RuneCountInString(s); n < width; n++ {
		dst = append(dst, ' ')
	}
	dst = append(dst, s...)
	return append(dst, ' ')
}
