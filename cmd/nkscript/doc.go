package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/nkscript/nkscript/builtins"
)

// cmdDoc prints the builtin reference as Markdown (the README's
// reference section), or one entry as text.
func cmdDoc(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, builtins.Reference())
		return exitOK
	case len(args) > 1 || strings.HasPrefix(args[0], "-"):
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, docUsage)
			return exitOK
		}
		fmt.Fprint(stderr, "nkscript doc: takes at most one NAME\n"+docUsage)
		return exitUsage
	}
	name := strings.TrimPrefix(strings.TrimSuffix(args[0], "()"), ".")
	if text, ok := builtins.Doc(name); ok {
		fmt.Fprint(stdout, text)
		return exitOK
	}
	msg := fmt.Sprintf("nkscript doc: no builtin %q", args[0])
	if s := suggestDoc(name); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	fmt.Fprintf(stderr, "%s\nRun 'nkscript doc' for the whole reference.\n", msg)
	return exitUsage
}

const docUsage = `Usage:
  nkscript doc          print the builtin reference (Markdown, as in README.md)
  nkscript doc NAME     print one entry: a builtin (ping), a value type (link) or a method (link.addr)
`

// suggestDoc returns the documented name closest to name, or "". A bare
// method name ("addr") finds its entry ("link.addr").
func suggestDoc(name string) string {
	names := builtins.DocNames()
	for _, n := range names {
		if _, m, ok := strings.Cut(n, "."); ok && strings.EqualFold(m, name) {
			return n
		}
	}
	return builtins.Nearest(name, names)
}
