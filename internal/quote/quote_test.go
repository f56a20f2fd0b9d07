package quote

import "testing"

func TestQuote(t *testing.T) {
	for _, c := range []struct {
		names    []string
		list, or string
	}{
		{nil, "", ""},
		{[]string{"tcp"}, `"tcp"`, `"tcp"`},
		{[]string{"tcp", "udp"}, `"tcp", "udp"`, `"tcp" or "udp"`},
		{[]string{"a", "b\"", "c"}, `"a", "b\"", "c"`, `"a", "b\"" or "c"`},
	} {
		if got := List(c.names); got != c.list {
			t.Errorf("List(%q) = %s, want %s", c.names, got, c.list)
		}
		if got := Or(c.names); got != c.or {
			t.Errorf("Or(%q) = %s, want %s", c.names, got, c.or)
		}
	}
}
