package main

import (
	"github.com/nkscript/nkscript/builtins"
	"go.starlark.net/starlark"
)

// suggest returns the predeclared name closest to an undefined one, or "".
func suggest(name string) string {
	candidates := builtins.Names()
	for n := range starlark.Universe {
		candidates = append(candidates, n)
	}
	return builtins.Nearest(name, candidates)
}
