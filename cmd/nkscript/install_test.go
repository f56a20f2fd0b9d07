package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstall runs `make install` into a temporary PREFIX and checks
// that the installed nkscript runs and its completion scripts are where
// bash-completion, zsh and fish look for them.
func TestMakeInstall(t *testing.T) {
	prefix := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "PREFIX="+prefix, "DESTDIR=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(prefix, "bin", "nkscript"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nkscript ") {
		t.Errorf("installed nkscript version: %v: %q", err, out)
	}
	for _, f := range []string{"share/bash-completion/completions/nkscript", "share/zsh/site-functions/_nkscript", "share/fish/vendor_completions.d/nkscript.fish"} {
		b, err := os.ReadFile(filepath.Join(prefix, f))
		if err != nil || !strings.Contains(string(b), "nkscript") {
			t.Errorf("%s: %v", f, err)
		}
	}
	bash := filepath.Join(prefix, "share/bash-completion/completions/nkscript")
	if out, err := exec.Command("bash", "-n", bash).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", bash, err, out)
	}
}
