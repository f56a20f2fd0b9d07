package builtins

import (
	"path/filepath"

	"go.starlark.net/syntax"
)

// NeedsNetkit reports whether the script at path, or a file it loads,
// names the netkit_pair builtin. It only parses: nothing runs. A file that
// does not parse returns its syntax error; load()s that cannot be read
// are ignored, as the run reports them with their position.
func NeedsNetkit(path string) (bool, error) {
	return needsNetkit(path, map[string]bool{})
}

func needsNetkit(path string, seen map[string]bool) (bool, error) {
	if seen[path] {
		return false, nil
	}
	seen[path] = true
	f, err := FileOptions.Parse(path, nil, 0)
	if err != nil {
		return false, err
	}
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if found {
			return false
		}
		switch n := n.(type) {
		case *syntax.Ident:
			found = n.Name == "netkit_pair"
		case *syntax.LoadStmt:
			mod := n.ModuleName()
			if !filepath.IsAbs(mod) {
				mod = filepath.Join(filepath.Dir(path), mod)
			}
			found, _ = needsNetkit(mod, seen)
		}
		return !found
	})
	return found, nil
}
