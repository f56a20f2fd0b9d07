package golden

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/internal/kernelcheck"
	"go.starlark.net/syntax"
)

// Script is one script selected as a test.
type Script struct {
	// Path is the script's path as found; it names the test in messages
	// and for Config.Run.
	Path string
	// Golden is NAME.golden beside it.
	Golden string
	// VethGolden is NAME.veth.golden beside it, if that exists: the
	// expected output on a kernel without netkit, where the script makes
	// veth pairs instead (see ChooseGolden).
	VethGolden string
	// Cases are its test_* functions in source order; nil: one test.
	Cases []string
	// Run are the cases Config.Run selected.
	Run []string
	// Netkit says the script or a file it loads uses netkit_pair.
	Netkit bool
	// FallsBack says the script reads kernel.netkit: it can branch to a
	// lab without netkit on a kernel that lacks it.
	FallsBack bool
	// Err is why the file fails without running (it does not parse).
	Err error
	// Skip says why its tests are skipped.
	Skip string
}

// Find lists the test scripts under paths, in lexical order within each
// path. In a directory, NAME.star is a test when NAME.golden sits beside
// it or when it defines top-level test_* functions, or when it does not
// parse; a script named in paths always is. A path that does not exist,
// or a file that is not a .star script, is an error.
func Find(paths []string) ([]*Script, error) {
	var files []*Script
	seen := map[string]bool{}
	add := func(tf *Script) {
		if !seen[tf.Path] {
			seen[tf.Path] = true
			files = append(files, tf)
		}
	}
	for _, p := range paths {
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: no such file or directory", p)
		}
		if !fi.IsDir() {
			if !strings.HasSuffix(p, ".star") {
				return nil, fmt.Errorf("%s: not a .star script", p)
			}
			add(inspect(p))
			continue
		}
		if err := walk(p, add); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// walk adds the tests under the directory dir.
func walk(dir string, add func(*Script)) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			add(&Script{Path: path, Err: err})
			return nil
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".star") || !d.Type().IsRegular() {
			return nil
		}
		tf := inspect(path)
		if tf.Err != nil || len(tf.Cases) > 0 {
			add(tf)
		} else if _, err := os.Stat(tf.Golden); err == nil {
			add(tf)
		}
		return nil
	})
}

// inspect parses a script for its test_* functions and whether it needs
// netkit.
func inspect(path string) *Script {
	base := strings.TrimSuffix(path, ".star")
	tf := &Script{Path: path, Golden: base + ".golden"}
	if _, err := os.Stat(base + ".veth.golden"); err == nil {
		tf.VethGolden = base + ".veth.golden"
	}
	f, err := builtins.FileOptions.Parse(path, nil, 0)
	if err != nil {
		tf.Err = err
		return tf
	}
	for _, stmt := range f.Stmts {
		if d, ok := stmt.(*syntax.DefStmt); ok && strings.HasPrefix(d.Name.Name, "test_") && !slices.Contains(tf.Cases, d.Name.Name) {
			tf.Cases = append(tf.Cases, d.Name.Name)
		}
	}
	tf.Netkit, _ = builtins.NeedsNetkit(path)
	syntax.Walk(f, func(n syntax.Node) bool {
		if d, ok := n.(*syntax.DotExpr); ok && d.Name.Name == "netkit" {
			if x, ok := d.X.(*syntax.Ident); ok && x.Name == "kernel" {
				tf.FallsBack = true
			}
		}
		return !tf.FallsBack
	})
	return tf
}

// Expected returns the golden file the output of the script at path must
// equal on the running kernel, as ChooseGolden picks it.
func Expected(path string) (string, error) {
	tf := inspect(path)
	return ChooseGolden(tf.Golden, tf.VethGolden)
}

// ChooseGolden returns the golden file the script's output must equal on
// the running kernel: NAME.veth.golden, where it exists, on a kernel
// without netkit, else NAME.golden. Whether the kernel has netkit is
// decided by kernelcheck (the kernel release and iproute2), not by the
// probe the script's kernel.netkit answers with, so a wrong probe fails
// the test rather than choosing the file it then matches.
func ChooseGolden(golden, vethGolden string) (string, error) {
	if vethGolden == "" {
		return golden, nil
	}
	netkit, err := kernelcheck.Netkit()
	if err != nil {
		return "", fmt.Errorf("choose between %s and %s: %w", golden, vethGolden, err)
	}
	if netkit {
		return golden, nil
	}
	return vethGolden, nil
}

// Select keeps the files with tests whose names re matches, and in them
// the matching cases; a nil re selects everything. A test's name is its
// path, plus ":test_name" for a case.
func Select(files []*Script, re *regexp.Regexp) []*Script {
	var sel []*Script
	for _, tf := range files {
		if tf.Cases == nil {
			if re == nil || re.MatchString(tf.Path) {
				sel = append(sel, tf)
			}
			continue
		}
		tf.Run = nil
		for _, c := range tf.Cases {
			if re == nil || re.MatchString(tf.Path+":"+c) {
				tf.Run = append(tf.Run, c)
			}
		}
		if len(tf.Run) > 0 {
			sel = append(sel, tf)
		}
	}
	return sel
}
