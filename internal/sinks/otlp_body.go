package sinks

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// setJSONBody sets v to the JSON object in b as a structured value: a
// map of maps, slices, strings, integers (int), other numbers (double)
// and booleans. b is what the body encoders write (one object, no white
// space outside strings); other JSON is read as well, white space aside.
// It reads b directly into the pdata value, with none of
// encoding/json's intermediate maps.
func setJSONBody(v pcommon.Value, b []byte) error {
	return setJSONBodyKeys(v, b, nil)
}

// setJSONBodyKeys is setJSONBody taking member names from keys, and
// adding those it lacks (up to a bound): the names repeat from record to
// record, so a sink that keeps keys allocates none for them.
func setJSONBodyKeys(v pcommon.Value, b []byte, keys map[string]string) error {
	d := jsonDec{b: b, keys: keys}
	if err := d.value(v); err != nil {
		return err
	}
	if d.i != len(d.b) {
		return errJSONSyntax
	}
	return nil
}

var errJSONSyntax = errors.New("body: not one JSON value")

type jsonDec struct {
	b    []byte
	i    int
	str  []byte            // scratch for strings with escapes
	keys map[string]string // interned member names, or nil
}

// maxInternedKeys bounds a sink's interned member names.
const maxInternedKeys = 4096

func (d *jsonDec) value(v pcommon.Value) error {
	if d.i >= len(d.b) {
		return errJSONSyntax
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(v.SetEmptyMap())
	case c == '[':
		return d.array(v.SetEmptySlice())
	case c == '"':
		s, err := d.string()
		if err != nil {
			return err
		}
		v.SetStr(s)
	case c == 't' || c == 'f' || c == 'n':
		switch {
		case d.lit("true"):
			v.SetBool(true)
		case d.lit("false"):
			v.SetBool(false)
		case d.lit("null"):
		default:
			return errJSONSyntax
		}
	default:
		return d.number(v)
	}
	return nil
}

func (d *jsonDec) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *jsonDec) object(m pcommon.Map) error {
	d.i++ // {
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return errJSONSyntax
		}
		k, err := d.key()
		if err != nil {
			return err
		}
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return errJSONSyntax
		}
		d.i++
		if err := d.value(m.PutEmpty(k)); err != nil {
			return err
		}
		if d.i >= len(d.b) {
			return errJSONSyntax
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (d *jsonDec) array(s pcommon.Slice) error {
	d.i++ // [
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return nil
	}
	for {
		if err := d.value(s.AppendEmpty()); err != nil {
			return err
		}
		if d.i >= len(d.b) {
			return errJSONSyntax
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// key reads a member name, interned when it has no escapes.
func (d *jsonDec) key() (string, error) {
	if d.keys == nil {
		return d.string()
	}
	start := d.i + 1
	end := start
	for end < len(d.b) && d.b[end] != '"' && d.b[end] != '\\' {
		end++
	}
	if end >= len(d.b) || d.b[end] != '"' || !utf8.Valid(d.b[start:end]) {
		return d.string() // escapes or invalid UTF-8: not interned
	}
	d.i = end + 1
	if k, ok := d.keys[string(d.b[start:end])]; ok {
		return k, nil
	}
	k := string(d.b[start:end])
	if len(d.keys) < maxInternedKeys {
		d.keys[k] = k
	}
	return k, nil
}

// string reads a string; one without escapes or invalid UTF-8 is
// converted once.
func (d *jsonDec) string() (string, error) {
	d.i++ // "
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return d.escaped(start) // replaced there, as encoding/json does
			}
			d.i += size
			continue
		}
		d.i++
	}
	return "", errJSONSyntax
}

func (d *jsonDec) escaped(start int) (string, error) {
	out := append(d.str[:0], d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			d.str = out
			return string(out), nil
		case c >= utf8.RuneSelf:
			// Valid UTF-8 as it is, each byte of an invalid sequence as
			// U+FFFD (protobuf strings must be UTF-8; encoding/json reads
			// them so too).
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[d.i:d.i+size]...)
			}
			d.i += size
			continue
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", errJSONSyntax
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", errJSONSyntax
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					d.i += 2
					if lo, ok := d.hex4(); ok {
						r2 = lo
					}
				}
				r = utf16.DecodeRune(r, r2)
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errJSONSyntax
		}
	}
	return "", errJSONSyntax
}

func (d *jsonDec) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// number reads an integer as int64 (one too large for it, and any with
// a fraction or exponent, as a double).
func (d *jsonDec) number(v pcommon.Value) error {
	start := d.i
	isInt := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c >= '0' && c <= '9' || c == '-' {
			d.i++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' {
			isInt = false
			d.i++
			continue
		}
		break
	}
	if d.i == start {
		return errJSONSyntax
	}
	s := d.b[start:d.i]
	if isInt {
		if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
			v.SetInt(n)
			return nil
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return errJSONSyntax
	}
	v.SetDouble(f)
	return nil
}
