package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// fetchKernel downloads and checks the package spec pins (or, when the
// archive no longer has it, the newest of its series), unpacks it in a
// temporary directory under kdir, checks its features and moves the
// finished kernel directory to kdir/<release>, which it returns. Progress
// goes to log.
func fetchKernel(ctx context.Context, spec KernelSpec, kdir string, log io.Writer) (string, error) {
	fmt.Fprintf(log, "nkscript: fetching kernel %s=%s\n", spec.Package, spec.Version)
	tmp, err := os.MkdirTemp(kdir, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	spec, debs, err := downloadKernelDebs(ctx, spec, kdir, tmp, log)
	if err != nil {
		return "", err
	}
	x := filepath.Join(tmp, "x")
	for _, deb := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, bytes.TrimSpace(out))
		}
		os.Remove(deb)
	}

	out := filepath.Join(tmp, "out")
	if err := layOutKernel(ctx, spec, x, out, log); err != nil {
		return "", err
	}
	if err := spec.checkFeatures(filepath.Join(out, "config")); err != nil {
		return "", err
	}
	if spec.pinned != "" {
		sayFallback(log, spec)
	}
	dir := filepath.Join(kdir, spec.Release)
	os.RemoveAll(dir) // an incomplete directory, or one of another cache layout
	if err := os.Rename(out, dir); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "nkscript: kernel cached in %s\n", dir)
	return dir, nil
}

// layOutKernel fills the directory out from the unpacked package x as a
// kernel cache directory: the bzImage as vmlinuz, its config, the kernel
// uncompressed as vmlinux when it can be, the modules nkscript may need with
// their index, and the stamp that marks the directory complete.
func layOutKernel(ctx context.Context, spec KernelSpec, x, out string, log io.Writer) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	moddir := filepath.Join(x, "lib/modules", spec.Release)
	if _, err := os.Stat(moddir); err != nil {
		moddir = filepath.Join(x, "usr/lib/modules", spec.Release) // since trixie
	}
	for dst, srcs := range map[string][]string{
		"vmlinuz": {"boot/vmlinuz-" + spec.Release, filepath.Join(moddir, "vmlinuz")},
		"config":  {"boot/config-" + spec.Release, filepath.Join(moddir, "config")},
	} {
		if err := renameFirst(x, srcs, filepath.Join(out, dst)); err != nil {
			return err
		}
	}
	// Without KVM, decompressing the kernel takes the guest over a second:
	// keep it uncompressed too. Not fatal: the bzImage boots as well.
	if err := extractVmlinux(ctx, filepath.Join(out, "vmlinuz"), filepath.Join(out, "vmlinux")); err != nil {
		fmt.Fprintf(log, "nkscript: no uncompressed kernel, boots will be slower: %v\n", err)
	}
	fmt.Fprintf(log, "nkscript: preparing kernel modules\n")
	if err := prepareModules(ctx, moddir, filepath.Join(out, "modules")); err != nil {
		return err
	}
	stamp, _ := json.MarshalIndent(kernelStamp{spec.Package, spec.Version, spec.SHA256, cacheLayout, spec.pinned}, "", "  ")
	return os.WriteFile(filepath.Join(out, stampFile), append(stamp, '\n'), 0o644)
}

// renameFirst moves the first of the files srcs (relative to x, or
// absolute) that exists to dst.
func renameFirst(x string, srcs []string, dst string) error {
	for _, src := range srcs {
		if !filepath.IsAbs(src) {
			src = filepath.Join(x, src)
		}
		if _, err := os.Stat(src); err == nil {
			return os.Rename(src, dst)
		}
	}
	return fmt.Errorf("package has none of %v", srcs)
}
