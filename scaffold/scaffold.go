// Package scaffold writes the files of a new lab, the work of `nkscript
// new NAME`: a BPF program in C, a lab script that attaches it and reads
// its trace lines back, a script of unit tests built on prog.run, their
// golden files and a README saying what to edit. The lab passes `nkscript
// test` as written, on a netkit kernel and, on veth and tcx, elsewhere.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

//go:embed template/*.tmpl
var templates embed.FS

// validName is what a lab's name may be: it names a directory, a network
// namespace and, with '-' turned into '_', a C function.
var validName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// maxIdent is the longest program name the kernel keeps whole
// (BPF_OBJ_NAME_LEN less the terminating NUL): longer names would show
// cut short in the lab's output.
const maxIdent = 15

// data is what the templates fill in.
type data struct {
	// Name is the lab's name: its directory and namespace.
	Name string
	// Ident is Name as a C identifier: the program's function.
	Ident string
	// HostLink is the name of the pair's end in the host.
	HostLink string
}

// files maps a template to the file it becomes in the lab's directory;
// "NAME" stands for the lab's name.
var files = []struct{ tmpl, out string }{
	{"prog.bpf.c.tmpl", "NAME.bpf.c"},
	{"lab.star.tmpl", "lab.star"},
	{"lab.golden.tmpl", "lab.golden"},
	{"unit.star.tmpl", "unit.star"},
	{"unit.golden.tmpl", "unit.golden"},
	{"README.md.tmpl", "README.md"},
}

// CheckName says why name cannot name a lab, or returns nil.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%q cannot name a lab: use a letter, then letters, digits, '_' or '-' (it names a directory, a namespace and a C function)", name)
	}
	if len(name) > maxIdent {
		return fmt.Errorf("%q cannot name a lab: at most %d characters, the length of a BPF program's name in the kernel", name, maxIdent)
	}
	return nil
}

// Write creates the directory dir, named after the lab, and the lab's
// files in it, and returns their paths in the order written. It refuses
// when dir exists already, whatever it holds: nothing is overwritten.
func Write(dir string) ([]string, error) {
	name := filepath.Base(filepath.Clean(dir))
	if err := CheckName(name); err != nil {
		return nil, err
	}
	d := data{Name: name, Ident: strings.ReplaceAll(name, "-", "_")}
	d.HostLink = "to_" + d.Ident[:min(len(d.Ident), 12)]
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create the lab's parent directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s exists already: nkscript new writes a new directory and overwrites nothing", dir)
		}
		return nil, fmt.Errorf("create the lab's directory: %w", err)
	}
	var written []string
	for _, f := range files {
		text, err := render(f.tmpl, d)
		if err != nil {
			return written, err
		}
		path := filepath.Join(dir, strings.ReplaceAll(f.out, "NAME", name))
		if err := os.WriteFile(path, text, 0o644); err != nil {
			return written, fmt.Errorf("write %s: %w", path, err)
		}
		written = append(written, path)
	}
	return written, nil
}

// render fills in the template named tmpl.
func render(tmpl string, d data) ([]byte, error) {
	t, err := template.ParseFS(templates, "template/"+tmpl)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("template %s: %w", tmpl, err)
	}
	return b.Bytes(), nil
}
