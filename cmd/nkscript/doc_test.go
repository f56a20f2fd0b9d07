package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/builtins"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's builtin reference and flag list from what nkscript says")

const readmePath = "../../README.md"

// TestReadmeDoc checks that README.md's builtin reference is exactly what
// `nkscript doc` prints; -update-readme rewrites it.
func TestReadmeDoc(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"doc"}, &out, &errOut); code != exitOK {
		t.Fatalf("nkscript doc: exit %d: %s", code, errOut.String())
	}
	readmeBlock(t, "doc", out.String(), "Edit builtins/doc.go, not the README")
}

// TestReadmeFlags checks that README.md lists every flag of a run, as
// `nkscript --help` does; -update-readme rewrites the list.
func TestReadmeFlags(t *testing.T) {
	var o options
	fs := newFlags(&o, io.Discard)
	readmeBlock(t, "flags", "```text\n"+fs.FlagUsages()+"```\n", "Edit the flags in cli.go, not the README")
}

// readmeBlock checks that README.md has want between the lines
// "<!-- BEGIN nkscript NAME -->" and "<!-- END nkscript NAME -->", or
// writes it there with -update-readme; hint says what to edit instead.
func readmeBlock(t *testing.T, name, want, hint string) {
	t.Helper()
	beginMarker := "<!-- BEGIN nkscript " + name + " -->\n"
	endMarker := "<!-- END nkscript " + name + " -->\n"
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	begin := strings.Index(s, beginMarker)
	end := strings.Index(s, endMarker)
	if begin < 0 || end < begin || strings.Count(s, beginMarker) != 1 || strings.Count(s, endMarker) != 1 {
		t.Fatalf("README.md must contain %q and then %q once each", beginMarker, endMarker)
	}
	begin += len(beginMarker)
	if *updateReadme {
		s = s[:begin] + want + s[end:]
		if err := os.WriteFile(readmePath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := s[begin:end]; got != want {
		line := 1 + strings.Count(s[:begin], "\n") + strings.Count(commonPrefix(got, want), "\n")
		t.Errorf("README.md's %s block differs from what nkscript says (first difference on README.md line %d).\n"+
			"%s, then regenerate with\n"+
			"\tgo test ./cmd/nkscript -run TestReadme -update-readme", name, line, hint)
	}
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

func TestCmdDoc(t *testing.T) {
	for _, c := range []struct {
		args             []string
		code             int
		stdout, stderr   string // prefixes
		stdoutIsAll      bool
		stderrContaining string
	}{
		{args: []string{"doc"}, stdout: builtins.Reference(), stdoutIsAll: true},
		{args: []string{"doc", "veth_pair"}, stdout: "veth_pair(primary, peer, primary_ns=host, peer_ns=None, mtu=None) -> veth_pair\n\n"},
		{args: []string{"doc", "link.addr"}, stdout: "link.addr(cidr) -> link\n"},
		{args: []string{"doc", "ping()"}, stdout: "ping(dst, "},
		{args: []string{"doc", "--help"}, stdout: "Usage:\n  nkscript doc "},
		{args: []string{"doc", "expect_dorp"}, code: exitUsage,
			stderr: `nkscript doc: no builtin "expect_dorp" (did you mean expect_drop?)` + "\n"},
		{args: []string{"doc", "addr"}, code: exitUsage, stderrContaining: "(did you mean link.addr?)"},
		{args: []string{"doc", "zzzzzzzz"}, code: exitUsage,
			stderr: `nkscript doc: no builtin "zzzzzzzz"` + "\nRun 'nkscript doc' for the whole reference.\n", stdoutIsAll: true},
		{args: []string{"doc", "ping", "exec"}, code: exitUsage, stderr: "nkscript doc: takes at most one NAME\n", stdoutIsAll: true},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, c.code, errOut.String())
		}
		if c.stdoutIsAll && out.String() != c.stdout || !strings.HasPrefix(out.String(), c.stdout) {
			t.Errorf("%v: stdout %q, want %q", c.args, out.String(), c.stdout)
		}
		if !strings.HasPrefix(errOut.String(), c.stderr) || !strings.Contains(errOut.String(), c.stderrContaining) {
			t.Errorf("%v: stderr %q, want %q", c.args, errOut.String(), c.stderr+c.stderrContaining)
		}
	}
	// Every documented name prints its entry.
	for _, name := range builtins.DocNames() {
		var out, errOut bytes.Buffer
		want, _ := builtins.Doc(name)
		if code := run([]string{"doc", name}, &out, &errOut); code != exitOK || out.String() != want {
			t.Errorf("doc %s: exit %d, stdout %q", name, code, out.String())
		}
	}
}

// TestReadmeGraph checks that the README's picture of the tutorial's lab
// is what `nkscript graph scripts/tutorial.star` draws.
func TestReadmeGraph(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN nkscript graph -->\n```mermaid\n", "```\n<!-- END nkscript graph -->"
	_, rest, ok := strings.Cut(string(readme), begin)
	got, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md has no section between %q and %q", begin, end)
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"graph", "../../scripts/tutorial.star"}, &stdout, &stderr); code != 0 {
		t.Fatalf("nkscript graph: exit %d\n%s", code, stderr.String())
	}
	if got != stdout.String() {
		t.Errorf("README.md's graph differs from nkscript graph scripts/tutorial.star:\nREADME:\n%s\ngraph:\n%s", got, stdout.String())
	}
}
