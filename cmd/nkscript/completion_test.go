package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cmdCompletion([]string{shell}, &out, &errOut); code != exitOK {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errOut.String())
	}
	path := filepath.Join(t.TempDir(), "nkscript."+shell)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompletionSyntax checks each script with its shell's parser, where
// the shell is installed; bash always is.
func TestCompletionSyntax(t *testing.T) {
	for _, shell := range shells {
		path := completionScript(t, shell)
		if _, err := exec.LookPath(shell); err != nil {
			if shell == "bash" {
				t.Fatal("bash is missing")
			}
			t.Logf("%s is not installed: its script is not parsed", shell)
			continue
		}
		if out, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	if _, err := exec.LookPath("fish"); err == nil {
		// fish completes a command line itself: complete -C.
		path := completionScript(t, "fish")
		out, err := exec.Command("fish", "-c", `source $argv[1]; complete -C "nkscript te"; complete -C "nkscript test --kernels 6."; complete -C "nkscript doc netkit_"`, path).CombinedOutput()
		for _, want := range []string{"test\t", "6.12\t", "netkit_pair"} {
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("fish complete -C: %v: %q lacks %q", err, out, want)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := cmdCompletion([]string{"tcsh"}, &out, &errOut); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, exitUsage)
	}
}

// TestCompletionBash sources the bash script, sets COMP_WORDS and
// COMP_CWORD as bash does for a command line, calls the completion
// function and checks COMPREPLY.
func TestCompletionBash(t *testing.T) {
	path := completionScript(t, "bash")
	for _, tc := range []struct {
		words []string // the last one is under the cursor
		want  []string
		not   []string
	}{
		{[]string{"nkscript", "te"}, []string{"test"}, []string{"doc"}},
		{[]string{"nkscript", "test", "--ker"}, []string{"--kernel", "--kernels"}, []string{"--update"}},
		{[]string{"nkscript", "test", "--kernels", "6."}, []string{"6.1", "6.12"}, []string{"host"}},
		{[]string{"nkscript", "test", "--kernels", "host,6.1"}, []string{"host,6.1", "host,6.12"}, nil},
		{[]string{"nkscript", "test", "--kernels", "=", ""}, []string{"host", "all", "6.1", "6.12"}, nil},
		{[]string{"nkscript", "--kernel", "6.1", "te"}, []string{"test"}, nil},
		{[]string{"nkscript", "--vm", "a"}, []string{"auto", "always"}, []string{"never"}},
		{[]string{"nkscript", "doc", "netkit_"}, []string{"netkit_pair"}, nil},
		{[]string{"nkscript", "completion", "f"}, []string{"fish"}, nil},
		{[]string{"nkscript", "test", "scripts/tut"}, []string{"scripts/tutorial.star"}, []string{"scripts/tutorial.golden"}},
		{[]string{"nkscript", "graph", "--format", ""}, []string{"mermaid", "dot", "svg"}, nil},
	} {
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _nkscript; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", append([]string{"-c", script, "bash", path}, tc.words...)...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: COMPREPLY %q lacks %q", tc.words, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("%q: COMPREPLY %q has %q", tc.words, got, w)
			}
		}
	}
}
