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
// ~/.cache/nkscript/kernels/<release>/. Progress goes to log. Once cached,
// it only reads the cache.
func EnsureKernelSpec(ctx context.Context, spec KernelSpec, log io.Writer) (KernelInfo, error) {
	if log == nil {
		log = io.Discard
	}
	kdir, err := kernelsDir()
	if err != nil {
		return KernelInfo{}, err
	}
	dir := filepath.Join(kdir, spec.Release)
	if ki, err := cachedKernel(dir); err == nil {
		return ki, nil
	}
	unlock, err := lockKernels(kdir)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	defer unlock()
	if ki, err := cachedKernel(dir); err == nil {
		return ki, nil
	}
	if err := fetchKernel(ctx, spec, kdir, dir, log); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	return cachedKernel(dir)
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
	b, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil {
		return KernelInfo{}, err
	}
	var st kernelStamp
	if err := json.Unmarshal(b, &st); err != nil {
		return KernelInfo{}, fmt.Errorf("%s: %w", stampFile, err)
	}
	if st.Layout != cacheLayout {
		return KernelInfo{}, fmt.Errorf("%s: cache layout %d, want %d", dir, st.Layout, cacheLayout)
	}
	return InspectKernel(filepath.Join(dir, "vmlinuz"))
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
