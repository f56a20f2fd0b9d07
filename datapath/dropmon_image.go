package datapath

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cilium/ebpf/btf"

	"github.com/nkscript/nkscript/bpf"
)

// KernelTypesEnv names the environment variable through which the host
// hands a microVM the drop monitor's types of the kernel image it boots:
// the path of the blob PrepareImageTypes made.
const KernelTypesEnv = "NKSCRIPT_KERNEL_TYPES"

// PrepareImageTypes keeps the kernel types the drop monitor needs from
// the kernel image vmlinux (an ELF that carries its BTF) of release
// release, and returns the blob's path. A microVM that boots the image
// reads the blob (KernelTypesEnv) instead of its kernel's whole BTF,
// which costs a run most of a second under TCG; the host makes it once
// per image, in some 50 ms.
func PrepareImageTypes(vmlinux, release string) (string, error) {
	f, err := elf.Open(vmlinux)
	if err != nil {
		return "", fmt.Errorf("the monitor's types of %s: %w", vmlinux, err)
	}
	defer f.Close()
	sec := f.Section(".BTF")
	if sec == nil {
		return "", fmt.Errorf("the monitor's types of %s: the image has no BTF (%w)", vmlinux, ErrNotSupported)
	}
	local, err := bpf.LoadDropMonitor()
	if err != nil {
		return "", err
	}
	key := typesKey(release, "", int64(sec.Size), local.Types)
	for _, dir := range monitorTypesDirs() {
		if path := filepath.Join(dir, key+".btf"); private(dir) && private(path) {
			return path, nil // made for an earlier boot of the image
		}
	}
	raw, err := sec.Data()
	if err != nil {
		return "", fmt.Errorf("the BTF of %s: %w", vmlinux, err)
	}
	full, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("the BTF of %s: %w", vmlinux, err)
	}
	blob, err := pruneKernelTypes(full, local.Types)
	if err != nil {
		return "", err
	}
	return writeMonitorTypes(key, blob)
}

// readImageTypes loads the blob at path that PrepareImageTypes made, if
// its name is key: it is for the running kernel (its release and the
// size of its BTF) and for this monitor.
func readImageTypes(path, key string) (*btf.Spec, error) {
	if path == "" {
		return nil, fs.ErrNotExist
	}
	if filepath.Base(path) != key+".btf" {
		return nil, fmt.Errorf("%s is not the monitor's types of this kernel", path)
	}
	return loadTypes(path)
}
