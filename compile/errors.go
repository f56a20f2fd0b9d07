package compile

import (
	"fmt"
	"regexp"
	"strings"
)

// maxErrorLines bounds the clang output an Error shows.
const maxErrorLines = 20

// Error is a compile clang refused: its messages, as clang printed them
// (file.bpf.c:LINE:COL: error: ...).
type Error struct {
	// Source is the source's file name.
	Source string
	// Stderr is everything clang printed.
	Stderr string
}

var generatedRE = regexp.MustCompile(`^\d+ (warnings?|errors?)( and \d+ errors?)? generated\.$`)

// Error shows clang's messages, the first maxErrorLines lines of them,
// without the closing "N errors generated." count.
func (e *Error) Error() string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(e.Stderr, "\n"), "\n") {
		if !generatedRE.MatchString(strings.TrimSpace(l)) {
			lines = append(lines, l)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "compile %s: clang failed:", e.Source)
	for i, l := range lines {
		if i == maxErrorLines {
			fmt.Fprintf(&b, "\n  ... (%d more lines)", len(lines)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(l)
	}
	return b.String()
}
