package compile

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// readDepfile returns the files a make-style dependency file, as clang
// -MD writes it, lists after its target, as absolute paths (relative ones
// are taken in dir), sorted and without repeats.
func readDepfile(path, dir string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	words := depWords(string(b))
	seen := map[string]bool{}
	var deps []string
	for i, w := range words {
		if i == 0 && strings.HasSuffix(w, ":") {
			continue // the target
		}
		if !filepath.IsAbs(w) {
			w = filepath.Join(dir, w)
		}
		w = filepath.Clean(w)
		if !seen[w] {
			seen[w] = true
			deps = append(deps, w)
		}
	}
	sort.Strings(deps)
	return deps, nil
}

// depWords splits a dependency file into its words: backslash-newline
// continues a line, "\ " is a space inside a name and "$$" a dollar.
func depWords(s string) []string {
	var words []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '\n' || s[i+1] == '\r'):
			flush()
			i++
		case c == '\\' && i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '#'):
			cur.WriteByte(s[i+1])
			i++
		case c == '$' && i+1 < len(s) && s[i+1] == '$':
			cur.WriteByte('$')
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return words
}
