package compile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ClangEnv names the environment variable that chooses the clang to run
// when Options.Clang is empty; nkscript's --clang flag sets it.
const ClangEnv = "NKSCRIPT_CLANG"

// InstallHint is the command that installs what Object needs on Debian
// (hack/setup.sh runs it).
const InstallHint = "apt-get install clang-19 llvm-19 libbpf-dev"

// MinClangMajor is the oldest clang major version Object accepts: older
// ones lack BPF features libbpf's headers rely on.
const MinClangMajor = 14

// defaultClangs are the names looked up in $PATH, in order, when no clang
// is named.
var defaultClangs = []string{"clang-19", "clang"}

// ErrNoClang is wrapped by the error of a compile with no clang to run.
var ErrNoClang = errors.New("no clang to compile BPF C")

// findClang resolves the clang to run: name, else $NKSCRIPT_CLANG, else
// the first of defaultClangs in $PATH.
func findClang(name string) (string, error) {
	if name == "" {
		name = os.Getenv(ClangEnv)
	}
	if name != "" {
		p, err := exec.LookPath(name)
		if ee := (*exec.Error)(nil); errors.As(err, &ee) {
			err = ee.Err
		}
		if err != nil {
			return "", fmt.Errorf("%w: %q (from --clang or $%s) cannot be run: %w; install clang with `%s`",
				ErrNoClang, name, ClangEnv, err, InstallHint)
		}
		return p, nil
	}
	for _, n := range defaultClangs {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (looked for %s in $PATH): install it with `%s`, or name one with --clang or $%s",
		ErrNoClang, strings.Join(defaultClangs, " and "), InstallHint, ClangEnv)
}

var clangVersionRE = regexp.MustCompile(`clang version (\d+)\.`)

// clangVersion returns path's version line, from a file under root named
// by the executable's identity when an earlier run asked it, so that a
// cached compile runs no clang at all.
func clangVersion(root, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("clang %s: %w", path, err)
	}
	id := hashStrings(path, strconv.FormatInt(st.Size(), 10), strconv.FormatInt(st.ModTime().UnixNano(), 10))
	memo := filepath.Join(root, "clang", id)
	if b, err := os.ReadFile(memo); err == nil {
		return string(b), nil
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	m := clangVersionRE.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("%s --version says %q, not a clang version; install clang with `%s`", path, line, InstallHint)
	}
	if major, _ := strconv.Atoi(m[1]); major < MinClangMajor {
		return "", fmt.Errorf("%s is clang %d; BPF C needs clang %d or newer: install it with `%s`", path, major, MinClangMajor, InstallHint)
	}
	writeAtomic(memo, []byte(line))
	return line, nil
}
