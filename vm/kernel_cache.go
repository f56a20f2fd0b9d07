package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nkscript/nkscript/internal/cachedir"
	"golang.org/x/sys/unix"
)

// CacheDir is where nkscript keeps kernels and initramfs images:
// $NKSCRIPT_CACHE, else ~/.cache/nkscript. Tests that run nkscript with
// another $HOME pass it on as $NKSCRIPT_CACHE.
func CacheDir() (string, error) { return cachedir.Dir() }

// kernelsDir is where EnsureKernelSpec keeps kernels: one directory per
// release.
func kernelsDir() (string, error) {
	d, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kernels"), nil
}

// kernelStamp marks a complete kernel cache directory.
type kernelStamp struct {
	Package string `json:"package"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Layout  int    `json:"layout"`
	// Pinned is "package=version" of the pinned kernel this one was
	// fetched in place of, because the archive no longer had it.
	Pinned string `json:"pinned,omitempty"`
}

// cacheLayout changes when EnsureKernel's output changes, so that older
// caches are rebuilt.
const cacheLayout = 2

const stampFile = "kernel.json"

// EnsureKernel returns the default kernel, fetching it first if it is not
// cached: see EnsureKernelSpec.
func EnsureKernel(ctx context.Context, log io.Writer) (KernelInfo, error) {
	return EnsureKernelSpec(ctx, DefaultKernel, log)
}

// EnsureKernelSpec returns a pinned kernel, fetching it first if it is not
// cached: it downloads the pinned Debian package with `apt-get download`
// (adding the bookworm-backports APT source if none is configured), checks
// its SHA256, extracts it with dpkg-deb and keeps the bzImage, its config
// and the modules nkscript may need (decompressed, with an index) under
// ~/.cache/nkscript/kernels/<release>/. When the archive no longer has the
// pinned version, it fetches the newest kernel of the same series instead,
// once its config shows the pinned kernel's features, and says so on log;
// later calls find that kernel in the cache. Progress goes to log. Once
// cached, it only reads the cache.
func EnsureKernelSpec(ctx context.Context, spec KernelSpec, log io.Writer) (KernelInfo, error) {
	if log == nil {
		log = io.Discard
	}
	kdir, err := kernelsDir()
	if err != nil {
		return KernelInfo{}, err
	}
	if ki, ok := cachedSpec(kdir, spec); ok {
		return ki, nil
	}
	unlock, err := lockKernels(kdir)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	defer unlock()
	if ki, ok := cachedSpec(kdir, spec); ok {
		return ki, nil
	}
	dir, err := fetchKernel(ctx, spec, kdir, log)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	return cachedKernel(dir)
}

// cachedSpec returns the kernel spec pins from the cache in kdir, or the
// kernel of its series fetched in its place.
func cachedSpec(kdir string, spec KernelSpec) (KernelInfo, bool) {
	if ki, err := cachedKernel(filepath.Join(kdir, spec.Release)); err == nil {
		return ki, true
	}
	return cachedFallback(kdir, spec)
}

// lockKernels creates the kernels directory kdir and takes its lock, which
// serialises concurrent fetches; it returns the function that releases it.
func lockKernels(kdir string) (unlock func(), err error) {
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(kdir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
	}, nil
}

// cachedKernel describes the kernel in the cache directory dir, if the
// directory is complete and of the current cache layout.
func cachedKernel(dir string) (KernelInfo, error) {
	st, err := readStamp(dir)
	if err != nil {
		return KernelInfo{}, err
	}
	if st.Layout != cacheLayout {
		return KernelInfo{}, fmt.Errorf("%s: cache layout %d, want %d", dir, st.Layout, cacheLayout)
	}
	return InspectKernel(filepath.Join(dir, "vmlinuz"))
}

// readStamp reads the stamp of the kernel cache directory dir.
func readStamp(dir string) (kernelStamp, error) {
	var st kernelStamp
	b, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", stampFile, err)
	}
	return st, nil
}

// ListKernels returns the kernels cached by EnsureKernel, by version.
func ListKernels() ([]KernelInfo, error) {
	kdir, err := kernelsDir()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(kdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list kernels: %w", err)
	}
	var out []KernelInfo
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		ki, err := cachedKernel(filepath.Join(kdir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, ki)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
