package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

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

// backportsSource is the deb822 source EnsureKernel writes when no APT
// source for bookworm-backports is configured.
const backportsSource = `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

const backportsSourceFile = "/etc/apt/sources.list.d/backports.sources"

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

// CacheDir is where nkscript keeps kernels and initramfs images:
// $NKSCRIPT_CACHE, else ~/.cache/nkscript. Tests that run nkscript with
// another $HOME pass it on as $NKSCRIPT_CACHE.
func CacheDir() (string, error) {
	if d := os.Getenv("NKSCRIPT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return filepath.Join(d, "nkscript"), nil
}

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

	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	// Serialise concurrent fetches.
	lock, err := os.OpenFile(filepath.Join(kdir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if ki, err := cachedKernel(dir); err == nil {
		return ki, nil
	}

	fmt.Fprintf(log, "nkscript: fetching kernel %s=%s\n", spec.Package, spec.Version)
	tmp, err := os.MkdirTemp(kdir, ".fetch-")
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	defer os.RemoveAll(tmp)

	deb, err := downloadKernelDeb(ctx, spec, tmp, log)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	if err := checkSHA256(deb, spec.SHA256); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	x := filepath.Join(tmp, "x")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: dpkg-deb -x: %w: %s", err, bytes.TrimSpace(out))
	}
	os.Remove(deb)

	out := filepath.Join(tmp, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	for src, dst := range map[string]string{
		"boot/vmlinuz-" + spec.Release: "vmlinuz",
		"boot/config-" + spec.Release:  "config",
	} {
		if err := os.Rename(filepath.Join(x, src), filepath.Join(out, dst)); err != nil {
			return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
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
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	stamp, _ := json.MarshalIndent(kernelStamp{spec.Package, spec.Version, spec.SHA256, cacheLayout}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, stampFile), append(stamp, '\n'), 0o644); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	os.RemoveAll(dir) // a partial copy from an older layout
	if err := os.Rename(out, dir); err != nil {
		return KernelInfo{}, fmt.Errorf("ensure kernel: %w", err)
	}
	fmt.Fprintf(log, "nkscript: kernel cached in %s\n", dir)
	return cachedKernel(dir)
}

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

// downloadKernelDeb runs `apt-get download` for the pinned package into dir
// and returns the path of the .deb.
func downloadKernelDeb(ctx context.Context, k KernelSpec, dir string, log io.Writer) (string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("apt-get not found: fetching the default kernel needs a Debian-based host (or pass a kernel image)")
	}
	for _, tool := range []string{"dpkg-deb", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"dpkg-deb": "dpkg", "xz": "xz-utils"}[tool]
			return "", fmt.Errorf("%s not found: install the %s package", tool, pkg)
		}
	}
	if k.Backports && !backportsConfigured() {
		fmt.Fprintf(log, "nkscript: adding APT source %s\n", backportsSourceFile)
		if err := os.WriteFile(backportsSourceFile, []byte(backportsSource), 0o644); err != nil {
			return "", fmt.Errorf("add bookworm-backports source: %w", err)
		}
		if err := aptUpdate(ctx, log); err != nil {
			return "", err
		}
	}
	spec := k.Package + "=" + k.Version
	download := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil {
		// The package lists may be stale or missing: update once.
		if err := aptUpdate(ctx, log); err != nil {
			return "", err
		}
		out, err = download()
	}
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s", spec, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, k.Package+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: no .deb in %s", spec, dir)
	}
	return debs[0], nil
}

func aptUpdate(ctx context.Context, log io.Writer) error {
	fmt.Fprintf(log, "nkscript: apt-get update\n")
	out, err := exec.CommandContext(ctx, "apt-get", "update", "-q").CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// backportsConfigured reports whether an APT source names bookworm-backports.
func backportsConfigured() bool {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, "/etc/apt/sources.list")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "#") && strings.Contains(line, "bookworm-backports") {
				return true
			}
		}
	}
	return false
}

func checkSHA256(file, want string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", file, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s, want %s", filepath.Base(file), got, want)
	}
	return nil
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

// extractVmlinux decompresses the kernel inside the bzImage bz to out and
// checks that it is an ELF with a PVH entry point, which qemu can boot
// directly.
func extractVmlinux(ctx context.Context, bz, out string) error {
	data, err := os.ReadFile(bz)
	if err != nil {
		return err
	}
	if len(data) < 0x250 || string(data[0x202:0x206]) != "HdrS" {
		return fmt.Errorf("%s: not a bzImage", bz)
	}
	le32 := func(off int) int {
		return int(uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24)
	}
	setupSects := int(data[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + le32(0x248)
	length := le32(0x24c)
	if length < 8 || start+length > len(data) {
		return fmt.Errorf("%s: bad payload bounds", bz)
	}
	// The payload ends with the uncompressed size (4 bytes), which the
	// decompressors would take for trailing garbage.
	payload := data[start : start+length-4]
	var tool string
	switch {
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		tool = "zstd"
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		tool = "xz"
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		tool = "gzip"
	default:
		return fmt.Errorf("%s: unknown kernel compression", bz)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-dc")
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Stdout = f
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(out)
		return fmt.Errorf("%s -dc: %w: %s", tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := checkPVH(out); err != nil {
		os.Remove(out)
		return err
	}
	return nil
}

// checkPVH makes sure vmlinux has the Xen PVH entry note qemu boots from.
func checkPVH(vmlinux string) error {
	const xenElfnotePhys32Entry = 18
	f, err := elf.Open(vmlinux)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(b) >= 12 {
			namesz := int(f.ByteOrder.Uint32(b[0:]))
			descsz := int(f.ByteOrder.Uint32(b[4:]))
			typ := f.ByteOrder.Uint32(b[8:])
			name := b[12:min(len(b), 12+namesz)]
			if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(name, "\x00")) == "Xen" {
				return nil
			}
			next := 12 + (namesz+3)&^3 + (descsz+3)&^3
			if next > len(b) {
				break
			}
			b = b[next:]
		}
	}
	return fmt.Errorf("%s: no PVH entry point", vmlinux)
}

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

// moduleIndexFile is the index the guest's module loader reads. It lives in
// the modules directory of a kernel.
const moduleIndexFile = "modules.nkindex.json"

// moduleIndex tells the guest how to load modules: for each module its file
// (relative to the index) and its dependencies in load order (transitive),
// the aliases that name modules, and the built-in modules.
type moduleIndex struct {
	Modules map[string]moduleEntry `json:"modules"`
	Aliases [][2]string            `json:"aliases"` // pattern, module
	Builtin []string               `json:"builtin"`
}

type moduleEntry struct {
	Path string   `json:"path"`
	Deps []string `json:"deps"`
}

// keepModule selects the modules worth caching: networking, virtual
// network devices, crypto and library code they use, and the filesystems
// the guest mounts. Dependencies of kept modules are kept too.
func keepModule(rel string) bool {
	for _, p := range []string{"kernel/net/", "kernel/lib/", "kernel/crypto/", "kernel/arch/x86/crypto/",
		"kernel/fs/9p/", "kernel/fs/netfs/", "kernel/fs/overlayfs/", "kernel/fs/fuse/",
		// Kernels that build virtio as modules (Debian's 6.1) need them to
		// reach the host at all.
		"kernel/drivers/virtio/", "kernel/drivers/char/virtio_console"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(rel, "kernel/drivers/net/"); ok {
		if !strings.Contains(rest, "/") {
			return true
		}
		dir := rest[:strings.Index(rest, "/")]
		switch dir {
		case "bonding", "ipvlan", "team", "vxlan", "wireguard", "netdevsim", "ppp":
			return true
		}
	}
	return false
}

func moduleName(rel string) string {
	base := path.Base(rel)
	base = base[:strings.Index(base, ".ko")]
	return strings.ReplaceAll(base, "-", "_")
}

// prepareModules decompresses the kept modules of the extracted module tree
// src (lib/modules/<release>) into dst and writes the index.
func prepareModules(ctx context.Context, src, dst string) error {
	all := map[string]string{} // name -> path relative to src
	err := filepath.WalkDir(filepath.Join(src, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(src, p)
			all[moduleName(rel)] = rel
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk modules: %w", err)
	}
	info := map[string]modinfo{}
	var queue []string
	for name, rel := range all {
		if keepModule(rel) {
			queue = append(queue, name)
		}
	}
	for len(queue) > 0 {
		sort.Strings(queue)
		var rels []string
		for _, n := range queue {
			rels = append(rels, all[n])
		}
		if err := decompressModules(ctx, src, dst, rels); err != nil {
			return err
		}
		var next []string
		for _, n := range queue {
			file := filepath.Join(dst, strings.TrimSuffix(strings.TrimSuffix(all[n], ".xz"), ".zst"))
			if err := stripSignatureFile(file); err != nil {
				return err
			}
			mi, err := readModinfo(file)
			if err != nil {
				return err
			}
			info[n] = mi
			for _, d := range mi.depends {
				if _, ok := info[d]; ok || contains(next, d) || contains(queue, d) {
					continue
				}
				if _, ok := all[d]; !ok {
					return fmt.Errorf("module %s: dependency %s not found", n, d)
				}
				next = append(next, d)
			}
		}
		queue = next
	}

	idx := moduleIndex{Modules: map[string]moduleEntry{}}
	for name, mi := range info {
		deps, err := loadOrder(name, info)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimSuffix(all[name], ".xz"), ".zst")
		idx.Modules[name] = moduleEntry{Path: rel, Deps: deps[:len(deps)-1]}
		for _, a := range mi.aliases {
			idx.Aliases = append(idx.Aliases, [2]string{a, name})
		}
	}
	sort.Slice(idx.Aliases, func(i, j int) bool { return idx.Aliases[i][0] < idx.Aliases[j][0] })
	if b, err := os.ReadFile(filepath.Join(src, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			idx.Builtin = append(idx.Builtin, moduleName(l))
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, moduleIndexFile), b, 0o644)
}

// stripSignatureFile removes the signature of the module in file (see
// stripModuleSignature).
func stripSignatureFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if s := stripModuleSignature(b); len(s) != len(b) {
		return os.WriteFile(file, s, 0o644)
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// loadOrder returns name's dependencies, transitively, in an order that
// loads each after its own dependencies, followed by name itself.
func loadOrder(name string, info map[string]modinfo) ([]string, error) {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range info[n].depends {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	return out, visit(name)
}

// decompressModules writes the modules rels (relative to src) to dst
// uncompressed, so that the guest kernel need not decompress them.
func decompressModules(ctx context.Context, src, dst string, rels []string) error {
	byTool := map[string][]string{}
	for _, rel := range rels {
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		in := filepath.Join(src, rel)
		switch {
		case strings.HasSuffix(rel, ".xz"):
			byTool["xz"] = append(byTool["xz"], rel)
		case strings.HasSuffix(rel, ".zst"):
			byTool["zstd"] = append(byTool["zstd"], rel)
		default:
			if err := copyFile(in, out); err != nil {
				return err
			}
		}
	}
	for tool, list := range byTool {
		// Decompress in place in the (temporary) source tree, in batches
		// run in parallel, then move the results.
		var batches [][]string
		for len(list) > 0 {
			n := min(len(list), 200)
			batches = append(batches, list[:n])
			list = list[n:]
		}
		errc := make(chan error, len(batches))
		sem := make(chan struct{}, runtime.NumCPU())
		for _, b := range batches {
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				args := []string{"-d", "-q", "-f"}
				for _, rel := range b {
					args = append(args, filepath.Join(src, rel))
				}
				out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%s -d: %w: %s", tool, err, bytes.TrimSpace(out))
				}
				errc <- err
			}()
		}
		for range batches {
			if err := <-errc; err != nil {
				return fmt.Errorf("decompress modules: %w", err)
			}
		}
		for _, rel := range byTool[tool] {
			plain := strings.TrimSuffix(strings.TrimSuffix(rel, ".xz"), ".zst")
			if err := os.Rename(filepath.Join(src, plain), filepath.Join(dst, plain)); err != nil {
				return fmt.Errorf("decompress modules: %w", err)
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type modinfo struct {
	depends []string
	aliases []string
}

// readModinfo parses the .modinfo section of a kernel module.
func readModinfo(file string) (modinfo, error) {
	f, err := elf.Open(file)
	if err != nil {
		return modinfo{}, fmt.Errorf("read module %s: %w", filepath.Base(file), err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return modinfo{}, fmt.Errorf("module %s: no .modinfo section", filepath.Base(file))
	}
	data, err := sec.Data()
	if err != nil {
		return modinfo{}, fmt.Errorf("module %s: %w", filepath.Base(file), err)
	}
	var mi modinfo
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					mi.depends = append(mi.depends, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case "alias":
			mi.aliases = append(mi.aliases, v)
		}
	}
	return mi, nil
}
