package vm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KernelInfo describes a kernel image the runner can boot.
type KernelInfo struct {
	// Version is the kernel release (`uname -r` in the guest), read from
	// the bzImage header.
	Version string
	// Path is the bzImage.
	Path string
	// Netkit is true when the kernel's config has CONFIG_NETKIT=y. It is
	// only meaningful when Config is not empty.
	Netkit bool
	// Config is the kernel config file Netkit was read from, "" if none
	// was found (netkit support unknown).
	Config string
	// Modules is the directory holding the kernel's modules and the index
	// the guest loads them with, "" if the kernel comes without modules.
	Modules string
	// Vmlinux is the same kernel uncompressed (an ELF with a PVH entry
	// point), which boots faster than the bzImage; "" if there is none.
	Vmlinux string
}

// InspectKernel describes the bzImage at path: its release string comes
// from the bzImage header; netkit support from a kernel config beside it
// ("config", "config-<release>", or config-X for vmlinuz-X), if any; modules
// from a "modules" directory beside it prepared by EnsureKernel, if any.
func InspectKernel(path string) (KernelInfo, error) {
	ver, err := bzImageVersion(path)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("inspect kernel: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("inspect kernel: %w", err)
	}
	ki := KernelInfo{Version: ver, Path: abs}
	dir := filepath.Dir(abs)
	cands := []string{filepath.Join(dir, "config"), filepath.Join(dir, "config-"+ver)}
	if suffix, ok := strings.CutPrefix(filepath.Base(abs), "vmlinuz-"); ok {
		cands = append(cands, filepath.Join(dir, "config-"+suffix))
	}
	for _, c := range cands {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		ki.Config = c
		ki.Netkit = configHas(b, "CONFIG_NETKIT=y")
		break
	}
	if _, err := os.Stat(filepath.Join(dir, "modules", moduleIndexFile)); err == nil {
		ki.Modules = filepath.Join(dir, "modules")
	}
	if filepath.Base(abs) == "vmlinuz" {
		// A kernel cached by EnsureKernel.
		if _, err := os.Stat(filepath.Join(dir, stampFile)); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "vmlinux")); err == nil {
				ki.Vmlinux = filepath.Join(dir, "vmlinux")
			}
		}
	}
	return ki, nil
}

// configHas reports whether the kernel config has the line line.
func configHas(config []byte, line string) bool {
	// No bufio.Scanner: it gives up at the first line over 64 KiB.
	for l := range bytes.SplitSeq(config, []byte("\n")) {
		if strings.TrimSpace(string(l)) == line {
			return true
		}
	}
	return false
}

// bzImageVersion reads the kernel version string from an x86 bzImage
// header (boot protocol 2.00+: "HdrS" at 0x202, kernel_version at 0x20e).
func bzImageVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("%s: not a bzImage: %w", path, err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s: not a bzImage (no HdrS magic)", path)
	}
	off := int64(hdr[0x20e]) | int64(hdr[0x20f])<<8
	if off == 0 {
		return "", fmt.Errorf("%s: bzImage has no version string", path)
	}
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, 0x200+off)
	if n == 0 {
		return "", fmt.Errorf("%s: read version string: %w", path, err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	fields := strings.Fields(string(buf))
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: empty version string", path)
	}
	return fields[0], nil
}
