package vm

import "strings"

// The kernel EnsureKernel fetches: a Debian bookworm-backports package,
// pinned by name, version and SHA256 so that every machine boots the same
// bytes. It is built with CONFIG_NETKIT=y.
const (
	DefaultKernelPackage = "linux-image-6.12.43+deb12-amd64"
	DefaultKernelVersion = "6.12.43-1~bpo12+1"
	DefaultKernelSHA256  = "6392dd8e3277f0fbdadac26af384f1c912195dbf63c660cd929bbda3f9922a4b"
	// DefaultKernelRelease is the package's `uname -r`.
	DefaultKernelRelease = "6.12.43+deb12-amd64"
)

// KernelSpec pins a Debian kernel package the microVM can boot.
type KernelSpec struct {
	// Package and Version are what apt-get downloads.
	Package, Version string
	// SHA256 is the .deb's checksum.
	SHA256 string
	// Release is the kernel's `uname -r`, the cache directory's name.
	Release string
	// Backports says the package comes from bookworm-backports (whose APT
	// source nkscript adds if it is missing).
	Backports bool
}

// DefaultKernel is the kernel --vm boots: netkit, tcx, BTF.
var DefaultKernel = KernelSpec{DefaultKernelPackage, DefaultKernelVersion, DefaultKernelSHA256, DefaultKernelRelease, true}

// LegacyKernel is Debian bookworm's own 6.1 kernel: BPF and BTF, but no
// netkit (6.7) and no tcx (6.6): labs on it run on veth with legacy tc.
// `--kernel 6.1` boots it.
var LegacyKernel = KernelSpec{"linux-image-6.1.0-47-amd64", "6.1.170-3", "e0061f95dbe31f5646e5a29ba9a62293f6b625a70e81fc2b04344d8ab7589c34", "6.1.0-47-amd64", false}

// PinnedKernels are the kernels `nkscript kernels --fetch` fetches.
var PinnedKernels = []KernelSpec{DefaultKernel, LegacyKernel}

// PinnedKernel returns the pinned kernel whose release starts with name
// ("6.1", "6.12", or a whole release).
func PinnedKernel(name string) (KernelSpec, bool) {
	for _, k := range PinnedKernels {
		if k.Release == name || strings.HasPrefix(k.Release, name+".") || strings.HasPrefix(k.Release, name+"-") {
			return k, true
		}
	}
	return KernelSpec{}, false
}
