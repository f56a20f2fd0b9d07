package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

func TestParseGolden(t *testing.T) {
	for _, tc := range []struct {
		in       string
		top      string
		sections map[string]string
		order    []string
		dups     []string
	}{
		{in: "", sections: map[string]string{}},
		{in: "a\nb\n", top: "a\nb\n", sections: map[string]string{}},
		{
			in:       "top\n--- test_a\na\n--- test_b\n--- test_c\nc1\nc2\n",
			top:      "top\n",
			sections: map[string]string{"test_a": "a\n", "test_b": "", "test_c": "c1\nc2\n"},
			order:    []string{"test_a", "test_b", "test_c"},
		},
		{
			// Only "--- test_NAME" lines are headers.
			in:       "--- x\n--- test_a\n--- test_a \n---test_b\n",
			top:      "--- x\n",
			sections: map[string]string{"test_a": "--- test_a \n---test_b\n"},
			order:    []string{"test_a"},
		},
		{
			in:       "--- test_a\n1\n--- test_a\n2\n",
			sections: map[string]string{"test_a": "1\n"},
			order:    []string{"test_a"},
			dups:     []string{"test_a"},
		},
		{
			// No newline at the end.
			in:       "t\n--- test_a\nx",
			top:      "t\n",
			sections: map[string]string{"test_a": "x"},
			order:    []string{"test_a"},
		},
	} {
		g := parseGolden(tc.in)
		if g.top != tc.top || !reflect.DeepEqual(g.sections, tc.sections) || !reflect.DeepEqual(g.order, tc.order) || !reflect.DeepEqual(g.dups, tc.dups) {
			t.Errorf("parseGolden(%q) = %+v, want top %q sections %v order %v dups %v", tc.in, g, tc.top, tc.sections, tc.order, tc.dups)
		}
	}
}

func TestGoldenCheck(t *testing.T) {
	tf := &testFile{path: "x.star", golden: "x.golden", cases: []string{"test_a"}}
	if msg := parseGolden("top\n--- test_a\n").check(tf); msg != "" {
		t.Errorf("check: %q, want none", msg)
	}
	msg := parseGolden("--- test_a\n--- test_gone\n--- test_a\n").check(tf)
	for _, want := range []string{"section for test_gone, which x.star does not define", "more than one section for test_a"} {
		if !strings.Contains(msg, want) {
			t.Errorf("check: %q lacks %q", msg, want)
		}
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindTests(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.star":           "print(1)\n",
		"a.golden":         "1\n",
		"lib.star":         "def helper():\n    def test_inner(): pass\nx = 1\n",
		"cases.star":       "def test_b(): pass\ndef helper(): pass\ndef test_a(): pass\ndef test_b(): pass\n",
		"sub/b.star":       "netkit_pair('a', 'b')\n",
		"sub/b.golden":     "",
		"sub/lib.star":     "def helper(): pass\n",
		".hidden/c.star":   "print(1)\n",
		".hidden/c.golden": "1\n",
		"broken.star":      "x = (\n",
		"notes.golden":     "a golden file without a script\n",
		"uses.star":        "load('sub/lib.star', 'helper')\nif True:\n    x = 1\n",
	})
	// lib.star is not a test: only top-level test_* defs count.
	files, err := findTests([]string{dir, filepath.Join(dir, "a.star"), filepath.Join(dir, "uses.star")})
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		path   string
		cases  []string
		netkit bool
		err    bool
	}
	var gots []got
	for _, tf := range files {
		rel, _ := filepath.Rel(dir, tf.path)
		if want := strings.TrimSuffix(tf.path, ".star") + ".golden"; tf.golden != want {
			t.Errorf("%s: golden %s, want %s", rel, tf.golden, want)
		}
		gots = append(gots, got{rel, tf.cases, tf.netkit, tf.err != nil})
	}
	want := []got{
		{"a.star", nil, false, false},
		{"broken.star", nil, false, true},
		{"cases.star", []string{"test_b", "test_a"}, false, false},
		{"sub/b.star", nil, true, false},
		// Named on the command line: a test without golden or cases.
		{"uses.star", nil, false, false},
	}
	if !reflect.DeepEqual(gots, want) {
		t.Errorf("findTests:\n got %+v\nwant %+v", gots, want)
	}

	for _, bad := range []string{filepath.Join(dir, "absent"), filepath.Join(dir, "notes.golden")} {
		if _, err := findTests([]string{bad}); err == nil {
			t.Errorf("findTests(%s): no error", bad)
		}
	}
}

func TestSelectTests(t *testing.T) {
	mk := func() []*testFile {
		return []*testFile{
			{path: "a.star"},
			{path: "b.star", cases: []string{"test_x", "test_y"}},
			{path: "c.star", cases: []string{"test_x"}},
		}
	}
	names := func(files []*testFile) []string {
		var n []string
		for _, tf := range files {
			if tf.cases == nil {
				n = append(n, tf.path)
			}
			for _, c := range tf.run {
				n = append(n, tf.path+":"+c)
			}
		}
		return n
	}
	for _, tc := range []struct {
		re   string
		want []string
	}{
		{"", []string{"a.star", "b.star:test_x", "b.star:test_y", "c.star:test_x"}},
		{"test_x", []string{"b.star:test_x", "c.star:test_x"}},
		{"^b.star", []string{"b.star:test_x", "b.star:test_y"}},
		{"a.star", []string{"a.star"}},
		{"nothing", nil},
	} {
		var re *regexp.Regexp
		if tc.re != "" {
			re = regexp.MustCompile(tc.re)
		}
		if got := names(selectTests(mk(), re)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--run %q: %v, want %v", tc.re, got, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		p, f, s int
		want    string
		code    int
	}{
		{2, 0, 0, "2 passed, 0 failed\n", exitOK},
		{2, 1, 0, "2 passed, 1 failed\n", exitFail},
		{0, 0, 3, "0 passed, 0 failed, 3 skipped\n", exitOK},
	} {
		var out bytes.Buffer
		tr := &tester{stdout: &out, passed: tc.p, failed: tc.f, skipped: tc.s}
		if code := tr.summary(); out.String() != tc.want || code != tc.code {
			t.Errorf("summary: %q exit %d, want %q exit %d", out.String(), code, tc.want, tc.code)
		}
	}
}

// TestTestInterruptCleansUp interrupts `nkscript test` in the middle of a
// case: the case fails, its lab is removed, the remaining tests do not
// run, and the summary is printed.
func TestTestInterruptCleansUp(t *testing.T) {
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter")
	}
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"a.star": fmt.Sprintf(`
def test_wait():
    ns = netns(%q)
    p = veth_pair("sig0", "sig1", peer_ns = ns)
    p.primary.addr("10.78.0.1/24").up()
    exec(host, "echo ready > %s; exec sleep 60")

def test_later():
    print("not reached")
`, labNs, fifo),
		"a.golden": "",
		"b.star":   "print('not reached')\n",
		"b.golden": "not reached\n",
	})
	cmd := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "test", dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	ready := make(chan error, 1)
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			_, err = f.Read(make([]byte, 16))
			f.Close()
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-exited:
		// Unblock the reader.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatalf("nkscript test exited before the case got ready: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if got := labState(t, hostNs, labNs, journals); !strings.Contains(got, "netns "+labNs) || !strings.Contains(got, "link sig0") {
		t.Fatalf("lab not built: %s", got)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	if want := "0 passed, 1 failed\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	se := stderr.String()
	for _, want := range []string{
		"FAIL " + filepath.Join(dir, "a.star") + ":test_wait\n",
		filepath.Join(dir, "a.star") + ":test_wait: interrupted; cleaning up\n",
		"nkscript test: interrupted\n",
	} {
		if !strings.Contains(se, want) {
			t.Errorf("stderr lacks %q:\n%s", want, se)
		}
	}
	if strings.Contains(se, "test_later") || strings.Contains(se, "b.star") {
		t.Errorf("tests ran after the interrupt:\n%s", se)
	}
	if got := labState(t, hostNs, labNs, journals); got != "" {
		t.Errorf("left behind: %s", got)
	}
}
