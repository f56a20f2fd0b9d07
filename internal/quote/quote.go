// Package quote renders lists of names for error messages, each name
// quoted as Go's %q does: `"a", "b", "c"` or `"a", "b" or "c"`.
package quote

import (
	"strconv"
	"strings"
)

// List joins the quoted names with commas: "a", "b", "c".
func List(names []string) string {
	return strings.Join(quoted(names), ", ")
}

// Or joins the quoted names as choices: "a", "b" or "c"; one name is
// quoted alone, none gives "".
func Or(names []string) string {
	q := quoted(names)
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func quoted(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return q
}
