package testenv

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// directSkip matches a skip that bypasses the policy.
var directSkip = regexp.MustCompile(`\b([a-z]+)\.Skip(f|Now)?\(`)

// skipPolicyPending are test files that other work in progress owns; their
// "needs root" skips go through Skipf when that work lands.
var skipPolicyPending = map[string]bool{}

// TestNoDirectSkips fails when a test file skips with t.Skip, t.Skipf or
// t.SkipNow rather than through this package, where CI sees every skip.
func TestNoDirectSkips(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root || rel == "internal/testenv" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") || skipPolicyPending[rel] {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range bytes.Split(b, []byte("\n")) {
			if m := directSkip.FindSubmatch(line); m != nil && string(m[1]) != "testenv" {
				t.Errorf("%s:%d: %s: skip through testenv.Skipf or testenv.SkipBecause", rel, i+1, bytes.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fakeTB records what a test helper did to it.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "TestFake" }
func (f *fakeTB) Skip(args ...any) {
	f.skipped = args[0].(string)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
}

// Under CI a skip not on the allow list fails; outside it skips. Every
// skip is in the summary with its verdict.
func TestSkipPolicy(t *testing.T) {
	skips.list = nil
	t.Setenv("CI", "")
	t.Setenv("NKSCRIPT_REQUIRE_VM", "1")
	ci := &fakeTB{}
	Skipf(ci, "needs %s", "root")
	if ci.failed == "" || ci.skipped != "" {
		t.Errorf("under CI: failed %q, skipped %q; want a failure", ci.failed, ci.skipped)
	}
	allowed := &fakeTB{}
	SkipBecause(allowed, NoNetkit, "kernel 6.18")
	if allowed.failed != "" || allowed.skipped != string(NoNetkit)+" (kernel 6.18)" {
		t.Errorf("allowed under CI: failed %q, skipped %q", allowed.failed, allowed.skipped)
	}
	SkipBecause(&fakeTB{}, Reason("because"), "")
	t.Setenv("NKSCRIPT_REQUIRE_VM", "")
	local := &fakeTB{}
	Skipf(local, "needs root")
	if local.failed != "" || local.skipped != "needs root" {
		t.Errorf("outside CI: failed %q, skipped %q; want a skip", local.failed, local.skipped)
	}
	var out strings.Builder
	writeSummary(&out)
	want := "skipped tests (3):\n" +
		"  TestFake [NOT on the allow list]: needs root\n" +
		"  TestFake [allowed]: " + string(NoNetkit) + " (kernel 6.18)\n" +
		"  TestFake [NOT on the allow list]: needs root\n"
	if out.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", out.String(), want)
	}
	skips.list = nil
}
