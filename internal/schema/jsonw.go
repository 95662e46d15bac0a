package schema

import (
	"strconv"
	"unicode/utf8"
)

// w appends one JSON object member by member. It allocates nothing but
// the growth of its buffer: objects are opened and closed in place, and
// an object closed with no members is cut away again.
type w struct {
	b    []byte
	need bool // a member was written at this level: the next needs a comma
}

// mark is where an object was opened.
type mark struct {
	pos  int  // len(b) before the object's key
	need bool // w.need before it
}

func (w *w) key(k string) {
	if w.need {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.need = true
}

// open starts the object member k.
func (w *w) open(k string) mark {
	m := mark{len(w.b), w.need}
	w.key(k)
	w.b = append(w.b, '{')
	w.need = false
	return m
}

// close ends the object opened at m; an object with no member is removed.
func (w *w) close(m mark) {
	if w.b[len(w.b)-1] == '{' {
		w.b, w.need = w.b[:m.pos], m.need
		return
	}
	w.b = append(w.b, '}')
	w.need = true
}

// openArray starts the array member k of objects; elem starts each.
func (w *w) openArray(k string) mark {
	m := mark{len(w.b), w.need}
	w.key(k)
	w.b = append(w.b, '[')
	w.need = false
	return m
}

// elem starts an object in an array opened by openArray; close it with
// closeElem.
func (w *w) elem() {
	if w.need {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '{')
	w.need = false
}

func (w *w) closeElem() {
	w.b = append(w.b, '}')
	w.need = true
}

// closeArray ends the array opened at m; an empty array is removed.
func (w *w) closeArray(m mark) {
	if w.b[len(w.b)-1] == '[' {
		w.b, w.need = w.b[:m.pos], m.need
		return
	}
	w.b = append(w.b, ']')
	w.need = true
}

func (w *w) str(k, v string) {
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *w) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// intStr writes v as a JSON string ("0"): ECS user and group ids are
// keywords, OCSF uids strings.
func (w *w) intStr(k string, v int64) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, '"')
}

func (w *w) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *w) strs(k string, v []string) {
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendString(w.b, s)
	}
	w.b = append(w.b, ']')
}

// raw writes v, already JSON, as the member k.
func (w *w) raw(k, v string) {
	w.key(k)
	w.b = append(w.b, v...)
}

// optStr, optInt and optBool write a member the record carries.
func (w *w) optStr(k string, v optional[string]) {
	if v.Set {
		w.str(k, v.V)
	}
}

// nonEmpty writes a string member the record carries and that is not
// empty (an executable or directory that could not be read is "", and
// listed under missing).
func (w *w) nonEmpty(k string, v optional[string]) {
	if v.Set && v.V != "" {
		w.str(k, v.V)
	}
}

func (w *w) optInt(k string, v optional[int64]) {
	if v.Set {
		w.int(k, v.V)
	}
}

func (w *w) optBool(k string, v optional[bool]) {
	if v.Set {
		w.bool(k, v.V)
	}
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD (a record
// parsed from a line has only valid strings; one built by hand may not).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
