package golden

import (
	"regexp"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"
)

// File is the golden file of a script with test_* cases: what the top
// level prints, then one section per case with what the case printed.
//
// On disk it is a txtar archive: the top level's output is the comment
// and each case a file named after its function ("-- test_name --").
// Files that head their sections with "--- test_name" lines, the older
// form, are read too and keep that form when --update rewrites them.
type File struct {
	// Top is what the top level printed.
	Top string
	// Sections maps a case to what it printed.
	Sections map[string]string
	// Order lists the sections in the order of the file.
	Order []string
	// Dups lists the cases that have more than one section; the first
	// one counts.
	Dups []string
	// legacy says the sections start at "--- test_name" lines.
	legacy bool
}

var legacyHeader = regexp.MustCompile(`(?m)^--- (test_[A-Za-z0-9_]*)$`)

// Parse reads the content of a golden file. A file with a line
// "--- test_name" is in the older form, where only such lines start
// sections; any other is a txtar archive, where every "-- name --" line
// starts one.
func Parse(content string) File {
	g := File{Sections: map[string]string{}}
	if legacyHeader.MatchString(content) {
		g.legacy = true
		g.parseLegacy(content)
		return g
	}
	a := txtar.Parse([]byte(content))
	g.Top = string(a.Comment)
	for _, f := range a.Files {
		g.add(f.Name, string(f.Data))
	}
	return g
}

func (g *File) add(name, data string) {
	if _, ok := g.Sections[name]; ok {
		g.Dups = append(g.Dups, name)
		return
	}
	g.Sections[name] = data
	g.Order = append(g.Order, name)
}

func (g *File) parseLegacy(content string) {
	cur, top := "", true
	var b strings.Builder
	flush := func() {
		if top {
			g.Top = b.String()
		} else {
			g.add(cur, b.String())
		}
		b.Reset()
	}
	for line := range strings.SplitAfterSeq(content, "\n") {
		if m := legacyHeader.FindStringSubmatch(strings.TrimSuffix(line, "\n")); m != nil {
			flush()
			cur, top = m[1], false
			continue
		}
		b.WriteString(line)
	}
	flush()
}

// Section is one case's part of a golden file.
type Section struct {
	Name string
	Data string
}

// Format renders top and sections in the form of g: txtar, or the older
// form when g was read in it. Output with lines that txtar would take for
// file markers is rendered in the older form too.
func (g File) Format(top string, sections ...Section) string {
	legacy := g.legacy || txtar.NeedsQuote([]byte(top))
	for _, s := range sections {
		legacy = legacy || txtar.NeedsQuote([]byte(s.Data))
	}
	if legacy {
		var b strings.Builder
		b.WriteString(top)
		for _, s := range sections {
			b.WriteString("--- " + s.Name + "\n" + s.Data)
		}
		return b.String()
	}
	a := &txtar.Archive{Comment: []byte(top)}
	for _, s := range sections {
		a.Files = append(a.Files, txtar.File{Name: s.Name, Data: []byte(s.Data)})
	}
	return string(txtar.Format(a))
}
