package golden

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeGuest stands in for the microVMs: it selects the tests as a guest
// given args would and reports each as passed, except those fail names
// on kernel, which fail with a script error and a diff. A kernel in
// crash exits 1 without reporting anything.
func fakeGuest(t *testing.T, fail map[string]string, crash string) func(context.Context, string, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, kernel string, args []string, stdout, stderr io.Writer) int {
		for _, want := range []string{"--vm=never", "--results-out", "--skip-unsupported", "--label=" + kernel} {
			if !slices.Contains(args, want) {
				t.Errorf("guest %s: args %q lack %s", kernel, args, want)
			}
		}
		if kernel == crash {
			fmt.Fprintln(stderr, "qemu: cannot boot")
			return 1
		}
		i := slices.Index(args, "--")
		files, err := Find(args[i+1:])
		if err != nil {
			t.Fatal(err)
		}
		code := 0
		for _, name := range Names(Select(files, nil)) {
			r := Result{Kernel: kernel, Name: name, Status: Pass, Output: "out of " + name + "\n", Seconds: 0.5}
			verdict := "ok "
			if fail[kernel] == name {
				r.Status, r.Message = Fail, name+":3:1: expect_pass: dropped\n--- x.golden\n+++ x output\n-a\n+b\n"
				verdict, code = "FAIL", 1
			}
			fmt.Fprintf(stderr, "%s [%s] %s\n", verdict, kernel, name)
			b, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s%s\n", resultMarker, b)
		}
		fmt.Fprintln(stdout, "N passed, N failed")
		return code
	}
}

func runMatrix(t *testing.T, cfg Config) (stdout, stderr string, code int) {
	t.Helper()
	files, err := Find(cfg.Paths)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cfg.Stdout, cfg.Stderr = &out, &errOut
	code = Run(context.Background(), cfg, Select(files, nil))
	return out.String(), errOut.String(), code
}

func TestKernelMatrix(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "out.xml")
	failing := "../scripts/overlay.star"
	cfg := Config{Kernels: []string{"6.1", "6.12"}, Jobs: 2, Paths: []string{"../scripts"}, JUnit: junit,
		RunInVM: fakeGuest(t, map[string]string{"6.1": failing}, "")}
	stdout, stderr, code := runMatrix(t, cfg)
	if code != exitFail {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	n := len(Names(findTests(t, "../scripts")))
	if want := fmt.Sprintf("%d passed, 1 failed", 2*n-1); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q\n%s", lines[len(lines)-1], want, stdout)
	}
	if !strings.HasPrefix(lines[0], "TEST") || !strings.Contains(lines[0], "6.1") || !strings.Contains(lines[0], "6.12") {
		t.Errorf("no table header: %q", lines[0])
	}
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, failing+" ") {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) != 3 || f[1] != "FAIL" || f[2] != "ok" {
		t.Errorf("row of %s: %q, want FAIL on 6.1 and ok on 6.12", failing, row)
	}
	if !strings.Contains(stderr, "FAIL [6.1] "+failing+"\n") {
		t.Errorf("no failure line names the kernel:\n%s", stderr)
	}
	if strings.Contains(stdout, "N passed") {
		t.Errorf("the guests' summary lines reached stdout:\n%s", stdout)
	}
	doc := readJUnit(t, junit)
	if doc.Tests != 2*n || doc.Failures != 1 || len(doc.Suites) != 2 || doc.Suites[0].Name != "6.1" || doc.Suites[1].Name != "6.12" {
		t.Fatalf("JUnit: %d tests, %d failures, suites %d", doc.Tests, doc.Failures, len(doc.Suites))
	}
	for _, c := range doc.Suites[0].Cases {
		if c.Classname != "kernel-6_1" {
			t.Errorf("classname %q, want kernel-6_1", c.Classname)
		}
		if (c.Failure != nil) != (c.Name == failing) {
			t.Errorf("case %s: failure %v", c.Name, c.Failure)
		}
		if c.Failure != nil && (!strings.Contains(c.Failure.Body, ":3:1: expect_pass") || !strings.Contains(c.Failure.Body, "+++ x output")) {
			t.Errorf("failure body lacks the error or the diff: %q", c.Failure.Body)
		}
	}
}

func TestKernelMatrixGuestCrash(t *testing.T) {
	cfg := Config{Kernels: []string{"6.1", "6.12"}, Jobs: 1, Paths: []string{"../scripts"}, JSON: true,
		RunInVM: fakeGuest(t, nil, "6.12")}
	stdout, stderr, code := runMatrix(t, cfg)
	if code != exitFail {
		t.Errorf("exit %d, want 1", code)
	}
	var doc struct {
		Passed, Failed, Skipped int
		Results                 []Result
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	n := len(Names(findTests(t, "../scripts")))
	if doc.Passed != n || doc.Failed != n || len(doc.Results) != 2*n {
		t.Errorf("--json: %d passed, %d failed, %d results; want %d, %d, %d", doc.Passed, doc.Failed, len(doc.Results), n, n, 2*n)
	}
	for _, r := range doc.Results {
		if r.Kernel == "6.12" && (r.Status != Fail || !strings.Contains(r.Message, "on kernel 6.12 exited with code 1")) {
			t.Errorf("result %+v, want a failure naming the kernel", r)
		}
	}
	if !strings.Contains(stderr, "FAIL [6.12] ") || !strings.Contains(stderr, "qemu: cannot boot") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestJUnitSchema(t *testing.T) {
	results := []Result{
		{Kernel: "host", Name: "a.star", Status: Pass, Output: "hello <&>\n", Seconds: 1.25},
		{Kernel: "host", Name: "b.star:test_x", Status: Fail, Message: "b.star:2:3: boom\n-x\n+y\n", Seconds: 0.5},
		{Kernel: "6.1", Name: "a.star", Status: Skip, Message: "needs netkit"},
	}
	path := filepath.Join(t.TempDir(), "j.xml")
	if err := WriteJUnit(path, []string{"host", "6.1"}, results, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	doc := readJUnit(t, path)
	if doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 || doc.Time != "1.750" {
		t.Errorf("testsuites: %+v", doc.JUnitCounts)
	}
	host, k61 := doc.Suites[0], doc.Suites[1]
	if host.Tests != 2 || host.Failures != 1 || host.Skipped != 0 || k61.Tests != 1 || k61.Skipped != 1 {
		t.Errorf("suites: %+v %+v", host.JUnitCounts, k61.JUnitCounts)
	}
	if c := host.Cases[0]; c.SystemOut != "hello <&>\n" || c.Time != "1.250" || c.Failure != nil {
		t.Errorf("case a: %+v", c)
	}
	if f := host.Cases[1].Failure; f == nil || f.Message != "b.star:2:3: boom" || f.Body != results[1].Message {
		t.Errorf("failure: %+v", f)
	}
	if s := k61.Cases[0].Skipped; s == nil || s.Message != "needs netkit" {
		t.Errorf("skipped: %+v", s)
	}
}

// readJUnit checks the file at path against the JUnit schema and reads
// it back.
func readJUnit(t *testing.T, path string) JUnitSuites {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateJUnit(b); err != nil {
		t.Errorf("%s does not follow the JUnit schema: %v", path, err)
	}
	var doc JUnitSuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// junitSchema is what the JUnit XML schema CI systems read (Jenkins'
// junit-10.xsd, which GitLab and the GitHub test reporters follow)
// allows: for each element, its parents, its required attributes and
// which of its attributes are counts or times.
var junitSchema = map[string]struct {
	parents, required, counts, times []string
}{
	"testsuites": {parents: []string{""}, counts: []string{"tests", "failures", "errors", "skipped"}, times: []string{"time"}},
	"testsuite":  {parents: []string{"testsuites"}, required: []string{"name", "tests"}, counts: []string{"tests", "failures", "errors", "skipped"}, times: []string{"time"}},
	"properties": {parents: []string{"testsuite"}},
	"property":   {parents: []string{"properties"}, required: []string{"name", "value"}},
	"testcase":   {parents: []string{"testsuite"}, required: []string{"name", "classname"}, times: []string{"time"}},
	"failure":    {parents: []string{"testcase"}, required: []string{"message", "type"}},
	"skipped":    {parents: []string{"testcase"}},
	"system-out": {parents: []string{"testcase", "testsuite"}},
}

// validateJUnit checks that every element of b is one the schema knows,
// under a parent it allows, with its required attributes, counts that are
// whole numbers and times that are decimals; and that each testsuite's
// counts agree with its testcases.
func validateJUnit(b []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []string
	var tests, failures, skipped int
	var want [3]string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			rule, ok := junitSchema[name]
			if !ok {
				return fmt.Errorf("unknown element <%s>", name)
			}
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			if !slices.Contains(rule.parents, parent) {
				return fmt.Errorf("<%s> inside <%s>", name, parent)
			}
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if err := checkAttrs(name, attrs, rule.required, rule.counts, rule.times); err != nil {
				return err
			}
			switch name {
			case "testsuite":
				tests, failures, skipped = 0, 0, 0
				want = [3]string{attrs["tests"], attrs["failures"], attrs["skipped"]}
			case "testcase":
				tests++
			case "failure":
				failures++
			case "skipped":
				skipped++
			}
			stack = append(stack, name)
		case xml.EndElement:
			if tok.Name.Local == "testsuite" {
				if got := [3]string{fmt.Sprint(tests), fmt.Sprint(failures), fmt.Sprint(skipped)}; got != want {
					return fmt.Errorf("testsuite says tests/failures/skipped %v, its testcases %v", want, got)
				}
			}
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

func checkAttrs(name string, attrs map[string]string, required, counts, times []string) error {
	for _, a := range required {
		if _, ok := attrs[a]; !ok {
			return fmt.Errorf("<%s> lacks the attribute %s", name, a)
		}
	}
	for _, a := range counts {
		var n uint
		if v, ok := attrs[a]; ok {
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != v {
				return fmt.Errorf("<%s %s=%q>: not a count", name, a, v)
			}
		}
	}
	for _, a := range times {
		var f float64
		if v, ok := attrs[a]; ok {
			if _, err := fmt.Sscanf(v, "%f", &f); err != nil || f < 0 || strings.ContainsAny(v, "eE,") {
				return fmt.Errorf("<%s %s=%q>: not a decimal", name, a, v)
			}
		}
	}
	return nil
}
