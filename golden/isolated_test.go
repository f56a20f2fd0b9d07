package golden

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIsolated stands in for RunIsolated: it reports the one test its
// arguments select (--run=^NAME$) as passed, as the process would, and
// counts the calls and the most that ran at once. The test named first
// takes longest, so that a later one ends first.
type fakeIsolated struct {
	mu            sync.Mutex
	names         []string
	running, most int
	first         string
}

func (f *fakeIsolated) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var name, label string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--run=^"); ok {
			name = strings.ReplaceAll(strings.TrimSuffix(v, "$"), `\.`, ".")
		}
		if v, ok := strings.CutPrefix(a, "--label="); ok {
			label = "[" + v + "] "
		}
	}
	f.mu.Lock()
	f.names = append(f.names, name)
	f.running++
	f.most = max(f.most, f.running)
	slow := f.first == "" || f.first == name
	f.first = name
	f.mu.Unlock()
	if slow {
		time.Sleep(200 * time.Millisecond)
	} else {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "ok  %s%s\n", label, name)
	b, _ := json.Marshal(Result{Name: name, Status: Pass})
	fmt.Fprintf(stdout, "%s%s\n", resultMarker, b)
	f.mu.Lock()
	f.running--
	f.mu.Unlock()
	return exitOK
}

// printScripts writes n scripts that only print, with their golden
// files, and one with two cases, into a new directory.
func printScripts(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := range n {
		name := filepath.Join(dir, fmt.Sprintf("s%d", i))
		os.WriteFile(name+".star", []byte(fmt.Sprintf("print(%d)\n", i)), 0o644)
		os.WriteFile(name+".golden", []byte(fmt.Sprintf("%d\n", i)), 0o644)
	}
	cases := "print(\"top\")\ndef test_a():\n    print(\"a\")\ndef test_b():\n    print(\"b\")\n"
	os.WriteFile(filepath.Join(dir, "cases.star"), []byte(cases), 0o644)
	os.WriteFile(filepath.Join(dir, "cases.golden"), []byte("top\n-- test_a --\na\n-- test_b --\nb\n"), 0o644)
	return dir
}

// The host's tests of a kernel matrix each run in a process of their own
// with -j 1 too: in this host's own namespace a lab meets the labs others
// run on the machine.
func TestHostKernelIsolatedWithOneJob(t *testing.T) {
	dir := printScripts(t, 3)
	var f fakeIsolated
	cfg := Config{Kernels: []string{HostKernel}, Jobs: 1, Paths: []string{dir}, RunIsolated: f.run,
		JournalDir: t.TempDir()}
	stdout, stderr, code := runMatrix(t, cfg)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	files, _ := Find([]string{dir})
	want := Names(Select(files, nil))
	if !slices.Equal(f.names, want) {
		t.Errorf("isolated runs %q, want one per test %q", f.names, want)
	}
	if f.most != 1 {
		t.Errorf("%d tests ran at once with -j 1", f.most)
	}
	if !strings.HasSuffix(stdout, fmt.Sprintf("%d passed, 0 failed\n", len(want))) {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// -j runs the tests of one kernel at once, each in a process of its own,
// and writes their lines in the order of a run one after the other.
func TestParallelKeepsOrder(t *testing.T) {
	dir := printScripts(t, 4)
	var f fakeIsolated
	files, err := Find([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	files = Select(files, nil)
	var out, errOut bytes.Buffer
	cfg := Config{VM: "never", Jobs: 3, Paths: []string{dir}, RunIsolated: f.run, Stdout: &out, Stderr: &errOut}
	tr := newTester(cfg, "host")
	if !tr.parallel(files) {
		t.Fatal("-j 3 with 6 tests does not run them at once")
	}
	if tr.runParallel(context.Background(), files, &errOut) {
		t.Fatal("interrupted")
	}
	names := Names(files)
	var want strings.Builder
	for _, n := range names {
		fmt.Fprintf(&want, "ok  %s\n", n)
	}
	if errOut.String() != want.String() {
		t.Errorf("lines:\n%s\nwant, in the order of the tests:\n%s", errOut.String(), want.String())
	}
	if f.most < 2 || f.most > 3 {
		t.Errorf("%d tests ran at once, want 2 or 3", f.most)
	}
	if tr.passed != len(names) || len(tr.results) != len(names) {
		t.Errorf("%d passed, %d results; want %d", tr.passed, len(tr.results), len(names))
	}
	for i, r := range tr.results {
		if r.Name != names[i] || r.Kernel != "host" {
			t.Errorf("result %d: %+v, want %s on host", i, r, names[i])
		}
	}
	cfg.Update = true
	if newTester(cfg, "host").parallel(files) {
		t.Error("--update runs tests at once: they would rewrite golden files together")
	}
}

// After an interrupt the tests left do not run and are not reported.
func TestParallelInterrupted(t *testing.T) {
	dir := printScripts(t, 3)
	files, err := Find([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	files = Select(files, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var f fakeIsolated
	run := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		cancel()
		return f.run(ctx, args, stdout, stderr)
	}
	var errOut bytes.Buffer
	cfg := Config{VM: "never", Jobs: 1, Paths: []string{dir}, RunIsolated: run, Stdout: io.Discard, Stderr: &errOut}
	tr := newTester(cfg, "host")
	if !tr.runParallel(ctx, files, &errOut) {
		t.Error("runParallel did not say it was interrupted")
	}
	if len(f.names) != 1 || len(tr.results) != 1 {
		t.Errorf("%d runs, %d results after an interrupt in the first; want 1 and 1\n%s", len(f.names), len(tr.results), errOut.String())
	}
}
