package datapath

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/nkscript/nkscript/internal/cachedir"
)

// The drop monitor needs a few kernel types: the structures its CO-RE
// relocations read (sk_buff, net_device, sock, net, ...) and the names of
// the drop reasons (enum skb_drop_reason). Parsing the kernel's whole BTF
// and matching types in it cost a process about 40 ms of CPU on this
// host, and ten times that in a microVM under TCG, in every run that
// checks traffic. So the first run on a kernel keeps the types the
// monitor uses, with only the members it reads, as a BTF blob of a few
// hundred bytes, and later runs load that instead.
//
// The blob is keyed by what identifies a kernel's BTF without reading it
// (5 MB, 8–25 ms through sysfs): the kernel's release and version strings
// and the size of /sys/kernel/btf/vmlinux, as BTF archives key by
// release; plus the monitor's own types and a format number.

// monitorTypesFormat changes whenever what the blob holds changes.
const monitorTypesFormat = 1

// vmlinuxBTF is where the running kernel exposes its BTF.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// monitorKernel holds the monitor's kernel types once a process has them.
var monitorKernel struct {
	sync.Mutex
	spec *btf.Spec
}

// monitorTypes returns the kernel types the drop monitor (whose own
// types are local) needs: from the cache when it has them for this
// kernel, else from the kernel's BTF, keeping them for the next run. A
// failure is not kept: the next call tries again.
func monitorTypes(local *btf.Spec) (*btf.Spec, error) {
	monitorKernel.Lock()
	defer monitorKernel.Unlock()
	if monitorKernel.spec != nil {
		return monitorKernel.spec, nil
	}
	k, err := runningKernel()
	if err != nil {
		return nil, err
	}
	if spec, err := readImageTypes(os.Getenv(KernelTypesEnv), typesKey(k.release, "", k.size, local)); err == nil {
		monitorKernel.spec = spec
		return spec, nil
	}
	key := typesKey(k.release, k.version, k.size, local)
	if spec, err := readMonitorTypes(key); err == nil {
		monitorKernel.spec = spec
		return spec, nil
	}
	full, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, err
	}
	raw, err := pruneKernelTypes(full, local)
	if err != nil {
		return nil, err
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the monitor's kernel types: %w", err)
	}
	// A cache that cannot be written costs the next run time, not this
	// one its result.
	_, _ = writeMonitorTypes(key, raw)
	monitorKernel.spec = spec
	return spec, nil
}

// kernelID is what names the running kernel's BTF without reading it:
// its release and version strings and the size of its BTF.
type kernelID struct {
	release, version string
	size             int64
}

func runningKernel() (kernelID, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelID{}, fmt.Errorf("uname: %w", err)
	}
	fi, err := os.Stat(vmlinuxBTF)
	if err != nil {
		return kernelID{}, err
	}
	return kernelID{unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Version[:]), fi.Size()}, nil
}

// monitorTypesKey names the blob of the running kernel's types for the
// monitor whose own types are local.
func monitorTypesKey(local *btf.Spec) (string, error) {
	k, err := runningKernel()
	if err != nil {
		return "", err
	}
	return typesKey(k.release, k.version, k.size, local), nil
}

// typesKey names the blob of the types of the kernel with release,
// version and BTF of size bytes for the monitor whose own types are local.
func typesKey(release, version string, size int64, local *btf.Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%s\n%s\n%d\n", monitorTypesFormat, release, version, size)
	for _, t := range localRoots(local) {
		fmt.Fprintf(h, "%v\n", t)
		for _, m := range members(t) {
			fmt.Fprintf(h, "\t%s %v\n", m.Name, m.Type)
		}
	}
	return release + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// monitorTypesDirs are where the blobs are kept: the user's cache, and
// a private directory under the temporary one for when the cache cannot
// be written (a microVM sees the host's cache read-only).
func monitorTypesDirs() []string {
	var dirs []string
	if c, err := cachedir.Dir(); err == nil {
		dirs = append(dirs, filepath.Join(c, "btf"))
	}
	return append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("nkscript-btf-%d", os.Geteuid())))
}

// readMonitorTypes loads the blob named key, if a directory has one this
// user owns and nobody else can write.
func readMonitorTypes(key string) (*btf.Spec, error) {
	for _, dir := range monitorTypesDirs() {
		if spec, err := loadTypes(filepath.Join(dir, key+".btf")); err == nil {
			return spec, nil
		}
	}
	return nil, fs.ErrNotExist
}

// loadTypes loads the blob at path if it and its directory are private.
func loadTypes(path string) (*btf.Spec, error) {
	if !private(filepath.Dir(path)) || !private(path) {
		return nil, fmt.Errorf("%s: not there, or not this user's alone", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return btf.LoadSpecFromReader(bytes.NewReader(raw))
}

// private says whether path belongs to this user and only they can write
// it: a blob another user could change would make the monitor read
// other fields.
func private(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o022 == 0
}

// writeMonitorTypes keeps raw as the blob named key in the first
// directory that takes it, whole or not at all, and returns its path.
func writeMonitorTypes(key string, raw []byte) (string, error) {
	var errs []error
	for _, dir := range monitorTypesDirs() {
		path := filepath.Join(dir, key+".btf")
		if err := cachedir.WriteFile(path, raw, 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		return path, nil
	}
	return "", errors.Join(errs...)
}

// localRoots are the monitor's named structures, unions and typedefs:
// the types its CO-RE relocations start from, named as in the kernel.
func localRoots(local *btf.Spec) []btf.Type {
	var roots []btf.Type
	for t, err := range local.All() {
		if err != nil {
			break
		}
		switch t.(type) {
		case *btf.Struct, *btf.Union, *btf.Typedef:
			if t.TypeName() != "" {
				roots = append(roots, t)
			}
		}
	}
	return roots
}

// pruneKernelTypes returns, as raw BTF, the kernel's types that match
// local's by name, keeping of each structure only the members local's
// names (at their kernel offsets, in anonymous members as in the kernel),
// and the kernel's drop reasons.
func pruneKernelTypes(kernel, local *btf.Spec) ([]byte, error) {
	p := pruner{keep: map[btf.Type]map[int]bool{}, seen: map[[2]btf.Type]bool{}, built: map[btf.Type]btf.Type{}}
	var roots []btf.Type
	for _, l := range localRoots(local) {
		name, _, _ := strings.Cut(l.TypeName(), "___")
		ks, _ := kernel.AnyTypesByName(name)
		for _, k := range ks {
			if sameKind(k, l) {
				p.mark(k, l)
				roots = append(roots, k)
			}
		}
	}
	var reasons *btf.Enum
	if kernel.TypeByName("skb_drop_reason", &reasons) == nil {
		roots = append(roots, reasons)
	}
	built := make([]btf.Type, 0, len(roots))
	for _, r := range roots {
		built = append(built, p.build(r))
	}
	b, err := btf.NewBuilder(built, nil)
	if err != nil {
		return nil, fmt.Errorf("the monitor's kernel types: %w", err)
	}
	raw, err := b.Marshal(nil, &btf.MarshalOptions{Order: binary.NativeEndian})
	if err != nil {
		return nil, fmt.Errorf("the monitor's kernel types: %w", err)
	}
	return raw, nil
}

func sameKind(a, b btf.Type) bool {
	switch a.(type) {
	case *btf.Struct:
		_, ok := b.(*btf.Struct)
		return ok
	case *btf.Union:
		_, ok := b.(*btf.Union)
		return ok
	case *btf.Typedef:
		_, ok := b.(*btf.Typedef)
		return ok
	}
	return false
}
