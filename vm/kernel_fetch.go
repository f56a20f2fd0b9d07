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

// fetchKernel downloads and checks the package spec pins, unpacks it in a
// temporary directory under kdir and moves the finished kernel directory to
// dir. Progress goes to log.
func fetchKernel(ctx context.Context, spec KernelSpec, kdir, dir string, log io.Writer) error {
	fmt.Fprintf(log, "nkscript: fetching kernel %s=%s\n", spec.Package, spec.Version)
	tmp, err := os.MkdirTemp(kdir, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	deb, err := downloadKernelDeb(ctx, spec, tmp, log)
	if err != nil {
		return err
	}
	if err := checkSHA256(deb, spec.SHA256); err != nil {
		return err
	}
	x := filepath.Join(tmp, "x")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x: %w: %s", err, bytes.TrimSpace(out))
	}
	os.Remove(deb)

	out := filepath.Join(tmp, "out")
	if err := layOutKernel(ctx, spec, x, out, log); err != nil {
		return err
	}
	os.RemoveAll(dir) // an incomplete directory, or one of another cache layout
	if err := os.Rename(out, dir); err != nil {
		return err
	}
	fmt.Fprintf(log, "nkscript: kernel cached in %s\n", dir)
	return nil
}

// layOutKernel fills the directory out from the unpacked package x as a
// kernel cache directory: the bzImage as vmlinuz, its config, the kernel
// uncompressed as vmlinux when it can be, the modules nkscript may need with
// their index, and the stamp that marks the directory complete.
func layOutKernel(ctx context.Context, spec KernelSpec, x, out string, log io.Writer) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{
		"boot/vmlinuz-" + spec.Release: "vmlinuz",
		"boot/config-" + spec.Release:  "config",
	} {
		if err := os.Rename(filepath.Join(x, src), filepath.Join(out, dst)); err != nil {
			return err
		}
	}
	// Without KVM, decompressing the kernel takes the guest over a second:
	// keep it uncompressed too. Not fatal: the bzImage boots as well.
	if err := extractVmlinux(ctx, filepath.Join(out, "vmlinuz"), filepath.Join(out, "vmlinux")); err != nil {
		fmt.Fprintf(log, "nkscript: no uncompressed kernel, boots will be slower: %v\n", err)
	}
	fmt.Fprintf(log, "nkscript: preparing kernel modules\n")
	moddir := filepath.Join(x, "lib/modules", spec.Release)
	if err := prepareModules(ctx, moddir, filepath.Join(out, "modules")); err != nil {
		return err
	}
	stamp, _ := json.MarshalIndent(kernelStamp{spec.Package, spec.Version, spec.SHA256, cacheLayout}, "", "  ")
	return os.WriteFile(filepath.Join(out, stampFile), append(stamp, '\n'), 0o644)
}
