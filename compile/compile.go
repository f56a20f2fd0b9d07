package compile

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nkscript/nkscript/internal/cachedir"
)

// Options configure Object.
type Options struct {
	// Clang is the clang to run, a path or a name in $PATH; empty means
	// $NKSCRIPT_CLANG, else clang-19, else clang.
	Clang string
	// CFlags are passed to clang after the default flags.
	CFlags []string
	// Include are directories searched for headers after the source's
	// own (the directory of the script that names the source).
	Include []string
	// CacheDir is where objects are kept; empty means the bpf/ directory
	// of nkscript's cache directory, or one under the temporary directory when that
	// cannot be written (the microVM's guest sees the host's read-only).
	CacheDir string
	// BTF is the kernel BTF vmlinux.h is generated from; empty means
	// KernelBTF, the running kernel's.
	BTF string
}

// baseFlags are the flags every compile gets before Options.CFlags.
func baseFlags() []string {
	arch := map[string]string{"amd64": "x86", "arm64": "arm64", "arm": "arm", "s390x": "s390",
		"ppc64le": "powerpc", "riscv64": "riscv", "loong64": "loongarch"}[runtime.GOARCH]
	flags := []string{"-g", "-O2", "-target", "bpf"}
	if arch != "" {
		flags = append(flags, "-D__TARGET_ARCH_"+arch)
	}
	return flags
}

// Object compiles the BPF C source at src and returns the path of the ELF
// object, from the cache when the source, the headers it includes, the
// flags and clang's version are those of an earlier compile.
func Object(src string, o Options) (string, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	text, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("compile %s: %w", filepath.Base(src), err)
	}
	root, err := cacheRoot(o.CacheDir)
	if err != nil {
		return "", fmt.Errorf("compile %s: %w", filepath.Base(src), err)
	}
	path, err := findClang(o.Clang)
	if err != nil {
		return "", err
	}
	version, err := clangVersion(root, path)
	if err != nil {
		return "", err
	}
	flags := append(baseFlags(), o.CFlags...)
	flags = append(flags, "-I", filepath.Dir(src))
	for _, d := range o.Include {
		if d, err := filepath.Abs(d); err == nil && d != filepath.Dir(src) {
			flags = append(flags, "-I", d)
		}
	}
	e := entry{root: root, key: hashStrings(append([]string{cacheVersion, version, src, string(text)}, flags...)...)}
	btf := &btfInfo{root: root, btf: o.BTF}
	if btf.btf == "" {
		btf.btf = KernelBTF
	}
	if obj := e.lookup(btf.current); obj != "" {
		return obj, nil
	}
	b := build{clang: path, src: src, flags: flags, root: root, btf: btf}
	tmp, deps, err := b.run(mentionsVmlinux(text))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(filepath.Dir(tmp))
	obj, err := e.store(tmp, deps)
	if err != nil {
		return "", fmt.Errorf("compile %s: keep the object: %w", filepath.Base(src), err)
	}
	return obj, nil
}

// cacheRoot returns a writable cache directory: dir, else the default.
func cacheRoot(dir string) (string, error) {
	if dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	if c, err := cachedir.Dir(); err == nil {
		dir = filepath.Join(c, "bpf")
		if writable(dir) {
			return dir, nil
		}
	}
	dir = filepath.Join(os.TempDir(), "nkscript-bpf-cache")
	if !writable(dir) {
		return "", fmt.Errorf("no writable cache directory (tried %s)", dir)
	}
	return dir, nil
}

func writable(dir string) bool {
	if os.MkdirAll(dir, 0o755) != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// build is one run of clang over a source.
type build struct {
	clang, src, root string
	flags            []string
	btf              *btfInfo
}

// run compiles b.src into a temporary directory under the cache and
// returns the object's path there and the headers clang read. A source
// that includes vmlinux.h gets the generated one's directory; when clang
// misses vmlinux.h, included through another header, it is generated and
// clang runs again.
func (b build) run(vmlinux bool) (string, []string, error) {
	tmp, err := os.MkdirTemp(b.root, ".build-*")
	if err != nil {
		return "", nil, fmt.Errorf("compile %s: %w", filepath.Base(b.src), err)
	}
	obj, depfile := filepath.Join(tmp, "prog.o"), filepath.Join(tmp, "prog.d")
	stderr, err := b.clangOnce(obj, depfile, vmlinux)
	if err != nil && !vmlinux && strings.Contains(stderr, "'vmlinux.h' file not found") {
		stderr, err = b.clangOnce(obj, depfile, true)
	}
	if err != nil && stderr != "" {
		os.RemoveAll(tmp)
		return "", nil, &Error{Source: filepath.Base(b.src), Stderr: stderr}
	}
	var deps []string
	if err == nil {
		deps, err = readDepfile(depfile, filepath.Dir(b.src))
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("compile %s: %w", filepath.Base(b.src), err)
	}
	return obj, deps, nil
}

// clangOnce runs clang in the source's directory, so that its messages
// and the object's line info name the source as the user wrote it.
func (b build) clangOnce(obj, depfile string, vmlinux bool) (string, error) {
	args := append([]string{}, b.flags...)
	if vmlinux {
		dir, err := b.btf.generate()
		if err != nil {
			return "", err
		}
		args = append(args, "-I", dir)
	}
	if d := multiarchInclude(); d != "" {
		args = append(args, "-idirafter", d)
	}
	args = append(args, "-MD", "-MF", depfile, "-c", filepath.Base(b.src), "-o", obj)
	cmd := exec.Command(b.clang, args...)
	cmd.Dir = filepath.Dir(b.src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil && stderr.Len() == 0 {
		return "", fmt.Errorf("%s: %w", b.clang, err)
	}
	return stderr.String(), err
}
