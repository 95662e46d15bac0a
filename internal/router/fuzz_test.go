package router_test

import (
	"testing"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/router"
)

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{
		"1.1", "12.*", "*.3", "*", "*.*", "4294967295.0", "007.01",
		"", "1", "1.", "a.b", "1.2.3", "-1.1", "4294967296.1", "+1.1", "1_0.1",
	} {
		f.Add(s, uint32(1), uint32(1))
	}
	f.Fuzz(func(t *testing.T, s string, idx, val uint32) {
		p, err := router.ParsePattern(s)
		if err != nil {
			if p != (router.Pattern{}) {
				t.Errorf("ParsePattern(%q) = %+v with error %v, want the zero Pattern", s, p, err)
			}
			return
		}
		str := p.String()
		again, err := router.ParsePattern(str)
		if err != nil {
			t.Fatalf("ParsePattern(%q) = %+v, whose String() %q does not parse: %v", s, p, str, err)
		}
		if again != p {
			t.Errorf("ParsePattern(%q) = %+v; ParsePattern(String() = %q) = %+v", s, p, str, again)
		}
		if again.String() != str {
			t.Errorf("String() is not stable: %q then %q", str, again.String())
		}
		id := cnmsg.ID{Idx: idx, Val: val}
		want := (p.AnyIdx || p.Idx == idx) && (p.AnyVal || p.Val == val)
		if got := p.Matches(id); got != want {
			t.Errorf("%q.Matches(%v) = %v, want %v", str, id, got, want)
		}
	})
}
