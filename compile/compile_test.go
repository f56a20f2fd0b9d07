package compile

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
)

// testClang returns the clang hack/setup.sh installs. Without it the test
// is skipped, except under CI, where it fails.
func testClang(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("clang-19")
	if err != nil {
		testenv.Skipf(t, "clang-19 is missing; hack/setup.sh installs it (%s)", InstallHint)
	}
	return p
}

// countingClang returns a wrapper of clang that counts its runs in the
// returned file.
func countingClang(t *testing.T) (wrapper, count string) {
	clang := testClang(t)
	dir := t.TempDir()
	wrapper, count = filepath.Join(dir, "clang"), filepath.Join(dir, "count")
	script := "#!/bin/sh\necho run >>" + count + "\nexec " + clang + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, count
}

func runs(t *testing.T, count string) int {
	b, err := os.ReadFile(count)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run")
}

// copySources copies testdata's files to a new directory.
func copySources(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func checkELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_BPF {
		t.Fatalf("%s: machine %v, want BPF", path, f.Machine)
	}
}

func TestCacheHitAndMiss(t *testing.T) {
	clang, count := countingClang(t)
	src := filepath.Join(copySources(t, "filter.bpf.c", "filter.h"), "filter.bpf.c")
	o := Options{Clang: clang, CacheDir: t.TempDir()}
	first, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	checkELF(t, first)
	if n := runs(t, count); n != 2 { // --version, then the compile
		t.Fatalf("first compile ran clang %d times, want 2", n)
	}
	second, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second compile gave %s, want the cached %s", second, first)
	}
	if n := runs(t, count); n != 2 {
		t.Fatalf("a cached compile ran clang: %d runs in all, want 2", n)
	}
	// Other flags, another object.
	o.CFlags = []string{"-DFILTER_EXTRA=1"}
	third, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	if third == first || runs(t, count) != 3 {
		t.Errorf("other cflags: got %s after %d runs, want a new object after 3", third, runs(t, count))
	}
}

func TestHeaderChangeInvalidates(t *testing.T) {
	clang, count := countingClang(t)
	dir := copySources(t, "filter.bpf.c", "filter.h")
	src := filepath.Join(dir, "filter.bpf.c")
	o := Options{Clang: clang, CacheDir: t.TempDir()}
	first, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "filter.h"), []byte("#define FILTER_PORT 12346\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || runs(t, count) != 3 {
		t.Fatalf("changed header: got %s (first %s) after %d clang runs, want a new object after 3", second, first, runs(t, count))
	}
	if _, err := Object(src, o); err != nil || runs(t, count) != 3 {
		t.Fatalf("unchanged since: %v, %d clang runs, want a cache hit", err, runs(t, count))
	}
}

func TestCompileErrorShowsClangPositions(t *testing.T) {
	clang := testClang(t)
	src := filepath.Join(copySources(t, "broken.bpf.c"), "broken.bpf.c")
	_, err := Object(src, Options{Clang: clang, CacheDir: t.TempDir()})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *compile.Error", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "compile broken.bpf.c: clang failed:\n  broken.bpf.c:5:14: error: ") {
		t.Errorf("message does not start with clang's position:\n%s", msg)
	}
	if strings.Contains(msg, "generated.") {
		t.Errorf("message keeps clang's error count:\n%s", msg)
	}
}

func TestMissingClang(t *testing.T) {
	src := filepath.Join(copySources(t, "filter.bpf.c", "filter.h"), "filter.bpf.c")
	_, err := Object(src, Options{Clang: "/nonexistent/clang-19", CacheDir: t.TempDir()})
	if !errors.Is(err, ErrNoClang) || !strings.Contains(err.Error(), InstallHint) {
		t.Errorf("named clang missing: got %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv(ClangEnv, "")
	_, err = Object(src, Options{CacheDir: t.TempDir()})
	if !errors.Is(err, ErrNoClang) || !strings.Contains(err.Error(), "apt-get install clang-19 llvm-19 libbpf-dev") ||
		!strings.Contains(err.Error(), "clang-19 and clang") {
		t.Errorf("no clang in $PATH: got %v", err)
	}
}

func TestClangEnv(t *testing.T) {
	clang, count := countingClang(t)
	t.Setenv(ClangEnv, clang)
	src := filepath.Join(copySources(t, "filter.bpf.c", "filter.h"), "filter.bpf.c")
	if _, err := Object(src, Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if runs(t, count) == 0 {
		t.Errorf("$%s=%s was not run", ClangEnv, clang)
	}
}

func TestVmlinuxFromHostBTF(t *testing.T) {
	clang, count := countingClang(t)
	if _, err := os.Stat(KernelBTF); err != nil {
		testenv.Skipf(t, "the host kernel has no BTF: %v", err)
	}
	if _, err := exec.LookPath("bpftool"); err != nil {
		testenv.Skipf(t, "no bpftool (hack/setup.sh installs it)")
	}
	cache := t.TempDir()
	src := filepath.Join(copySources(t, "vmlinux.bpf.c"), "vmlinux.bpf.c")
	o := Options{Clang: clang, CacheDir: cache}
	obj, err := Object(src, o)
	if err != nil {
		t.Fatal(err)
	}
	checkELF(t, obj)
	headers, _ := filepath.Glob(filepath.Join(cache, vmlinuxSubdir, "*", "vmlinux.h"))
	if len(headers) != 1 {
		t.Fatalf("generated headers: %v, want one", headers)
	}
	if again, err := Object(src, o); err != nil || again != obj || runs(t, count) != 2 {
		t.Fatalf("second compile: %s, %v after %d clang runs; want the cached %s", again, err, runs(t, count), obj)
	}
	// Another kernel's BTF (here: a copy with one more byte, which
	// bpftool still reads) is another vmlinux.h, and so another object.
	other := filepath.Join(t.TempDir(), "vmlinux")
	b, err := os.ReadFile(KernelBTF)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	o.BTF = other
	if _, err := Object(src, o); err != nil {
		t.Fatal(err)
	}
	if runs(t, count) != 3 {
		t.Errorf("another kernel's BTF: %d clang runs, want 3", runs(t, count))
	}
}

func TestDepWords(t *testing.T) {
	in := "prog.o: filter.bpf.c /usr/include/linux/bpf.h \\\n  my\\ dir/a.h cost$$.h\n"
	got := strings.Join(depWords(in), "|")
	want := "prog.o:|filter.bpf.c|/usr/include/linux/bpf.h|my dir/a.h|cost$.h"
	if got != want {
		t.Errorf("depWords = %q, want %q", got, want)
	}
}

func TestErrorTrims(t *testing.T) {
	var lines []string
	for range 30 {
		lines = append(lines, "x.bpf.c:1:1: error: bad")
	}
	lines = append(lines, "30 errors generated.")
	msg := (&Error{Source: "x.bpf.c", Stderr: strings.Join(lines, "\n") + "\n"}).Error()
	if strings.Count(msg, "error: bad") != maxErrorLines || !strings.HasSuffix(msg, "... (10 more lines)") {
		t.Errorf("trimmed message:\n%s", msg)
	}
}

// BenchmarkCachedObject measures what a cached program("x.bpf.c") adds
// to loading the object: finding clang, hashing the source and headers
// and, for a source that includes vmlinux.h, finding the kernel BTF's
// hash.
func BenchmarkCachedObject(b *testing.B) {
	clang, err := exec.LookPath("clang-19")
	if err != nil {
		testenv.Skipf(b, "no clang-19")
	}
	for _, name := range []string{"filter.bpf.c", "vmlinux.bpf.c"} {
		b.Run(name, func(b *testing.B) {
			src, err := filepath.Abs(filepath.Join("testdata", name))
			if err != nil {
				b.Fatal(err)
			}
			o := Options{Clang: clang, CacheDir: b.TempDir()}
			if _, err := Object(src, o); err != nil {
				testenv.Skipf(b, "%v", err) // vmlinux.h needs kernel BTF and bpftool
			}
			b.ResetTimer()
			for range b.N {
				if _, err := Object(src, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
