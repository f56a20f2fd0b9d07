package main

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/golden"
	"github.com/nkscript/nkscript/internal/testutil"
)

// actionStep is a shell step of action.yml: its env: and its run: block.
type actionStep struct {
	name string
	env  map[string]string
	run  string
}

// actionSteps reads the shell steps of the composite action in yml. The
// action keeps them to this shape: "- name:" or "- uses:" items under
// "steps:", with "env:" maps of one-line values and "run: |" blocks;
// steps that use another action are left out.
func actionSteps(t *testing.T, yml string) []actionStep {
	t.Helper()
	_, body, ok := strings.Cut(yml, "\n  steps:\n")
	if !ok {
		t.Fatal("action.yml has no runs.steps")
	}
	var steps []actionStep
	var cur *actionStep
	section := ""
	for line := range strings.SplitSeq(body, "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		text := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(text, "- "):
			steps = append(steps, actionStep{env: map[string]string{}})
			cur, section = &steps[len(steps)-1], ""
			text = strings.TrimPrefix(text, "- ")
			indent += 2
		case cur == nil:
			continue
		case section == "run" && (indent >= 8 || text == ""):
			cur.run += strings.TrimPrefix(line, "        ") + "\n"
			continue
		case section == "env" && indent >= 8:
			k, v, _ := strings.Cut(text, ": ")
			cur.env[k] = v
			continue
		}
		key, val, _ := strings.Cut(text, ":")
		switch {
		case indent != 6:
			section = ""
		case key == "name":
			cur.name = strings.TrimSpace(val)
		case key == "uses":
			cur.name = "uses"
		case key == "env":
			section = "env"
		case key == "run" && strings.TrimSpace(val) == "|":
			section = "run"
		default:
			section = ""
		}
	}
	var shell []actionStep
	for _, s := range steps {
		if s.run != "" {
			shell = append(shell, s)
		}
	}
	return shell
}

// TestActionSteps runs the shell steps of action.yml with bash, as the
// runner would, on a workspace of two tests: build, the microVM setup
// (which the host kernel does not need) and `nkscript test` with a shard
// and a JUnit file.
func TestActionSteps(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	yml, err := os.ReadFile(filepath.Join(repo, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	steps := actionSteps(t, string(yml))
	if len(steps) != 3 {
		t.Fatalf("action.yml: %d shell steps, want 3: %+v", len(steps), steps)
	}
	tmp := t.TempDir()
	ws, runner := filepath.Join(tmp, "ws"), filepath.Join(tmp, "runner")
	testutil.WriteFiles(t, ws, map[string]string{
		"hello.star":   "print('hello')\n",
		"hello.golden": "hello\n",
		"cases.star":   "print('top')\ndef test_a():\n    print('a')\ndef test_b():\n    print('b')\n",
		"cases.golden": "top\n-- test_a --\na\n-- test_b --\nb\n",
	})
	inputs := map[string]string{"paths": ".", "kernels": "host", "shard": "1/2", "junit": "out.xml",
		"args": "-j 1 --journal-dir=" + filepath.Join(tmp, "journal")}
	expr := regexp.MustCompile(`\$\{\{ *([a-z_.]+) *\}\}`)
	output := filepath.Join(tmp, "github-output")
	for _, s := range steps {
		cmd := exec.Command("bash", "-e", "-c", s.run)
		cmd.Dir = ws
		cmd.Env = append(os.Environ(), "RUNNER_TEMP="+runner, "GITHUB_OUTPUT="+output, "GITHUB_WORKSPACE="+ws)
		for k, v := range s.env {
			v = expr.ReplaceAllStringFunc(v, func(m string) string {
				name := expr.FindStringSubmatch(m)[1]
				if name == "github.action_path" {
					return repo
				}
				in, ok := inputs[strings.TrimPrefix(name, "inputs.")]
				if !ok {
					t.Errorf("step %s: unknown expression %s", s.name, m)
				}
				return in
			})
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		t.Logf("step %s:\n%s", s.name, out)
		if err != nil {
			t.Fatalf("step %s: %v", s.name, err)
		}
	}
	if b, _ := os.ReadFile(output); !strings.HasPrefix(string(b), "kernels-key=nkscript-kernels-") {
		t.Errorf("GITHUB_OUTPUT: %q", b)
	}
	b, err := os.ReadFile(filepath.Join(ws, "out.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc golden.JUnitSuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// Sorted, the tests are cases.star:test_a, cases.star:test_b,
	// hello.star; shard 1/2 holds the first and the last.
	if doc.Tests != 2 || doc.Failures != 0 || len(doc.Suites) != 1 || doc.Suites[0].Name != "host" ||
		doc.Suites[0].Cases[0].Name != "cases.star:test_a" || doc.Suites[0].Cases[1].Name != "hello.star" {
		t.Errorf("JUnit report: %s", b)
	}
}
