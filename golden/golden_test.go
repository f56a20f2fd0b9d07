package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/kernelcheck"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/internal/testutil"
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
		g := Parse(tc.in)
		if g.Top != tc.top || !reflect.DeepEqual(g.Sections, tc.sections) || !reflect.DeepEqual(g.Order, tc.order) || !reflect.DeepEqual(g.Dups, tc.dups) {
			t.Errorf("Parse(%q) = %+v, want top %q sections %v order %v dups %v", tc.in, g, tc.top, tc.sections, tc.order, tc.dups)
		}
	}
}

func TestGoldenCheck(t *testing.T) {
	tf := &Script{Path: "x.star", Golden: "x.golden", Cases: []string{"test_a"}}
	if msg := Parse("top\n--- test_a\n").Check(tf); msg != "" {
		t.Errorf("check: %q, want none", msg)
	}
	msg := Parse("--- test_a\n--- test_gone\n--- test_a\n").Check(tf)
	for _, want := range []string{"section for test_gone, which x.star does not define", "more than one section for test_a"} {
		if !strings.Contains(msg, want) {
			t.Errorf("check: %q lacks %q", msg, want)
		}
	}
}

func TestFindTests(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFiles(t, dir, map[string]string{
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
	files, err := Find([]string{dir, filepath.Join(dir, "a.star"), filepath.Join(dir, "uses.star")})
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
		rel, _ := filepath.Rel(dir, tf.Path)
		if want := strings.TrimSuffix(tf.Path, ".star") + ".golden"; tf.Golden != want {
			t.Errorf("%s: golden %s, want %s", rel, tf.Golden, want)
		}
		gots = append(gots, got{rel, tf.Cases, tf.Netkit, tf.Err != nil})
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
		if _, err := Find([]string{bad}); err == nil {
			t.Errorf("Find(%s): no error", bad)
		}
	}
}

func TestSelectTests(t *testing.T) {
	mk := func() []*Script {
		return []*Script{
			{Path: "a.star"},
			{Path: "b.star", Cases: []string{"test_x", "test_y"}},
			{Path: "c.star", Cases: []string{"test_x"}},
		}
	}
	names := func(files []*Script) []string {
		var n []string
		for _, tf := range files {
			if tf.Cases == nil {
				n = append(n, tf.Path)
			}
			for _, c := range tf.Run {
				n = append(n, tf.Path+":"+c)
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
		if got := names(Select(mk(), re)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--run %q: %v, want %v", tc.re, got, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		p, f, s int
		noSkip  bool
		want    string
		code    int
	}{
		{2, 0, 0, false, "2 passed, 0 failed\n", exitOK},
		{2, 1, 0, false, "2 passed, 1 failed\n", exitFail},
		{0, 0, 3, false, "0 passed, 0 failed, 3 skipped\n", exitOK},
		{2, 0, 0, true, "2 passed, 0 failed\n", exitOK},
		{1, 0, 7, true, "1 passed, 0 failed, 7 skipped\n", exitFail},
	} {
		var out, errOut bytes.Buffer
		tr := &tester{cfg: Config{Stdout: &out, Stderr: &errOut, NoSkip: tc.noSkip}, passed: tc.p, failed: tc.f, skipped: tc.s}
		if code := tr.summary(); out.String() != tc.want || code != tc.code {
			t.Errorf("summary (no-skip %v): %q exit %d, want %q exit %d", tc.noSkip, out.String(), code, tc.want, tc.code)
		}
		if tc.code == exitFail && tc.f == 0 && !strings.Contains(errOut.String(), "7 skipped under --no-skip") {
			t.Errorf("--no-skip failure not explained: %q", errOut.String())
		}
	}
}

func TestParseTxtar(t *testing.T) {
	in := "top\n-- test_a --\na\n-- test_b --\n-- test_a --\nagain\n-- test_c --\nc1\nc2\n"
	g := Parse(in)
	if g.legacy || g.Top != "top\n" || !reflect.DeepEqual(g.Order, []string{"test_a", "test_b", "test_c"}) ||
		!reflect.DeepEqual(g.Sections, map[string]string{"test_a": "a\n", "test_b": "", "test_c": "c1\nc2\n"}) ||
		!reflect.DeepEqual(g.Dups, []string{"test_a"}) {
		t.Errorf("Parse(%q) = %+v", in, g)
	}
	// "--- test_x" lines make a file the older form, where "-- x --" lines
	// are output.
	g = Parse("-- test_a --\n--- test_b\nb\n")
	if !g.legacy || g.Top != "-- test_a --\n" || !reflect.DeepEqual(g.Order, []string{"test_b"}) {
		t.Errorf("older form: %+v", g)
	}
}

func TestFormat(t *testing.T) {
	sections := []Section{{"test_a", "a\n"}, {"test_b", ""}}
	for _, tc := range []struct {
		from, top string
		sections  []Section
		want      string
	}{
		{"", "top\n", sections, "top\n-- test_a --\na\n-- test_b --\n"},
		{"top\n--- test_a\n", "top\n", sections, "top\n--- test_a\na\n--- test_b\n"},
		// Output that txtar would read as a file marker: the older form.
		{"", "-- x --\n", sections, "-- x --\n--- test_a\na\n--- test_b\n"},
		{"", "top\n", []Section{{"test_a", "-- y --\n"}}, "top\n--- test_a\n-- y --\n"},
	} {
		got := Parse(tc.from).Format(tc.top, tc.sections...)
		if got != tc.want {
			t.Errorf("Parse(%q).Format(%q, %v) = %q, want %q", tc.from, tc.top, tc.sections, got, tc.want)
		}
		// What Format writes, Parse reads back.
		g := Parse(got)
		for _, s := range tc.sections {
			if g.Sections[s.Name] != s.Data {
				t.Errorf("Parse(%q): section %s = %q, want %q", got, s.Name, g.Sections[s.Name], s.Data)
			}
		}
		if g.Top != tc.top {
			t.Errorf("Parse(%q): top %q, want %q", got, g.Top, tc.top)
		}
	}
}

// TestShippedGoldens checks that the golden files of scripts/ read as
// before: all output, no sections.
func TestShippedGoldens(t *testing.T) {
	files, _ := filepath.Glob("../scripts/*.golden")
	if len(files) == 0 {
		t.Fatal("no golden files in scripts/")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if g := Parse(string(b)); g.Top != string(b) || len(g.Order) != 0 {
			t.Errorf("%s: parses as top %d bytes and sections %v, want all of it as top", f, len(g.Top), g.Order)
		}
	}
}

// A script with NAME.veth.golden beside it expects that file on a kernel
// without netkit, as kernelcheck decides it, and NAME.golden elsewhere.
func TestVethGolden(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.star", "a.golden", "a.veth.golden", "b.star", "b.golden"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("print(1)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Find([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].VethGolden != filepath.Join(dir, "a.veth.golden") || files[1].VethGolden != "" {
		t.Fatalf("found %+v, want a.star with a.veth.golden and b.star without", files)
	}
	if g, err := Expected(filepath.Join(dir, "b.star")); err != nil || g != filepath.Join(dir, "b.golden") {
		t.Errorf("b.star expects %q, %v", g, err)
	}
	netkit, err := kernelcheck.Netkit()
	if err != nil {
		testenv.Skipf(t, "cannot check the kernel: %v", err)
	}
	want := "a.veth.golden"
	if netkit {
		want = "a.golden"
	}
	if g, err := Expected(filepath.Join(dir, "a.star")); err != nil || g != filepath.Join(dir, want) {
		t.Errorf("a.star expects %q, %v; want %s (kernel netkit: %v)", g, err, want, netkit)
	}
}
