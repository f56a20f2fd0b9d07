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
	// Suite is the Debian suite that carries the package: "bookworm" (the
	// host's own sources), "bookworm-backports" (whose APT source nkscript
	// adds if it is missing) or another suite, which nkscript reads through
	// a private APT configuration that never touches the host's.
	Suite string
	// Parts are more packages the kernel is split into (since trixie: the
	// config and System.map in linux-base, the modules in linux-modules),
	// downloaded and unpacked with Package.
	Parts []Deb
	// Series is a regular expression matching the releases of the same
	// series and flavour ("6.12.N+deb12-amd64"): when the archive no longer
	// has the pinned version, the newest package of the series is fetched
	// instead, named as Package and Parts are with its release.
	Series string
	// Features are what the kernel has that labs rely on (see
	// kernelFeatures): every fetched kernel's config is checked for them.
	Features []string

	// pinned is "package=version" of the pinned kernel this one replaces
	// because the archive no longer has it, "" for a pinned kernel.
	pinned string
}

// A Deb is one Debian package pinned by name, version and SHA256.
type Deb struct {
	Package, Version, SHA256 string
}

// DefaultKernel is the kernel --vm boots: netkit, tcx, BTF.
var DefaultKernel = KernelSpec{
	Package: DefaultKernelPackage, Version: DefaultKernelVersion, SHA256: DefaultKernelSHA256,
	Release: DefaultKernelRelease, Suite: "bookworm-backports",
	Series: `6\.12\.[0-9]+\+deb12-amd64`, Features: netkitFeatures,
}

// netkitFeatures are what the netkit kernels have; legacyFeatures what
// the 6.1 kernel has.
var (
	netkitFeatures = []string{"netkit", "tcx", "BTF", "9p", "virtio", "overlayfs"}
	legacyFeatures = []string{"BTF", "9p", "virtio", "overlayfs"}
)

// LegacyKernel is Debian bookworm's own 6.1 kernel: BPF and BTF, but no
// netkit (6.7) and no tcx (6.6): labs on it run on veth with legacy tc.
// `--kernel 6.1` boots it.
var LegacyKernel = KernelSpec{
	Package: "linux-image-6.1.0-47-amd64", Version: "6.1.170-3",
	SHA256:  "e0061f95dbe31f5646e5a29ba9a62293f6b625a70e81fc2b04344d8ab7589c34",
	Release: "6.1.0-47-amd64", Suite: "bookworm",
	Series: `6\.1\.0-[0-9]+-amd64`, Features: legacyFeatures,
}

// newestVersion is the Debian version of every package of NewestKernel.
const newestVersion = "7.3.4-1~bpo13+1"

// NewestKernel is Linux 7.3 from Debian trixie-backports: netkit with the
// knobs 6.12 lacks (scrub since 6.13, headroom and tailroom since 6.14).
// `--kernel 7.3` boots it.
var NewestKernel = KernelSpec{
	Package: "linux-binary-7.3.4+deb13-amd64", Version: newestVersion,
	SHA256:  "7e3248d03a84dcdda88c567aa8c4038f2e7795d2dd167b112c56f8901b6f513f",
	Release: "7.3.4+deb13-amd64", Suite: "trixie-backports",
	Series: `7\.3\.[0-9]+\+deb13-amd64`, Features: netkitFeatures,
	Parts: []Deb{
		{"linux-base-7.3.4+deb13-amd64", newestVersion, "5663505495b5c90be94af42105c7b28629802516779102dac48d5a00cc00fccf"},
		{"linux-modules-7.3.4+deb13-amd64", newestVersion, "b3ea01922c9f133767a83cf6891c19b3693858ded617bf22d1e34f95382c08ea"},
	},
}

// PinnedKernels are the kernels `nkscript kernels --fetch` fetches.
var PinnedKernels = []KernelSpec{DefaultKernel, LegacyKernel, NewestKernel}

// debs returns every package of the kernel, Package first.
func (k KernelSpec) debs() []Deb {
	return append([]Deb{{k.Package, k.Version, k.SHA256}}, k.Parts...)
}

// PinnedKernel returns the pinned kernel whose release starts with name
// ("6.1", "6.12", "7.3", or a whole release); a name more than one pinned
// kernel starts with ("6") names none.
func PinnedKernel(name string) (KernelSpec, bool) {
	var found []KernelSpec
	for _, k := range PinnedKernels {
		if k.Release == name || strings.HasPrefix(k.Release, name+".") || strings.HasPrefix(k.Release, name+"-") {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return KernelSpec{}, false
	}
	return found[0], true
}
