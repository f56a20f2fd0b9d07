package datapath

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/nkscript/nkscript/bpf"
)

// monitorRelocations are the drop monitor's CO-RE relocations.
func monitorRelocations(t *testing.T) (*btf.Spec, []*btf.CORERelocation, binary.ByteOrder) {
	t.Helper()
	spec, err := bpf.LoadDropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	var relos []*btf.CORERelocation
	for _, p := range spec.Programs {
		for i := range p.Instructions {
			if r := btf.CORERelocationMetadata(&p.Instructions[i]); r != nil {
				relos = append(relos, r)
			}
		}
	}
	if len(relos) == 0 {
		t.Fatal("the drop monitor has no CO-RE relocations")
	}
	return spec.Types, relos, spec.ByteOrder
}

// The kept types relocate the monitor exactly as the kernel's whole BTF
// does, and they name the same drop reasons.
func TestDropMonitorTypesRelocateAsTheKernel(t *testing.T) {
	local, relos, order := monitorRelocations(t)
	full, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pruneKernelTypes(full, local)
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	noIDs := func(btf.Type) (btf.TypeID, error) { return 0, nil }
	want, err := btf.CORERelocate(relos, []*btf.Spec{full}, order, noIDs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := btf.CORERelocate(relos, []*btf.Spec{pruned}, order, noIDs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if s := want[i].String(); strings.Contains(s, "poison") {
			t.Errorf("relocation %v does not apply to this kernel: %s", relos[i], s)
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("relocation %v: kept types give %s, the kernel's BTF %s", relos[i], got[i].String(), want[i].String())
		}
	}
	if len(raw) > 64<<10 {
		t.Errorf("the kept types are %d bytes: more than the members the monitor reads", len(raw))
	}
	var kernelReasons, keptReasons *btf.Enum
	if err := full.TypeByName("skb_drop_reason", &kernelReasons); err != nil {
		t.Fatal(err)
	}
	if err := pruned.TypeByName("skb_drop_reason", &keptReasons); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keptReasons.Values, kernelReasons.Values) {
		t.Error("the kept drop reasons differ from the kernel's")
	}
	t.Logf("%d relocations, %d bytes of types", len(relos), len(raw))
}

// The first process on a kernel keeps its types; the next one reads them,
// and a damaged blob is made again.
func TestDropMonitorTypesCached(t *testing.T) {
	cache, local := freshTypesCache(t)
	first, err := monitorTypes(local)
	if err != nil {
		t.Fatal(err)
	}
	key, err := monitorTypesKey(local)
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(cache, "btf", key+".btf")
	fi, err := os.Stat(blob)
	if err != nil {
		t.Fatalf("the types were not kept: %v", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("%s is writable by others: %v", blob, fi.Mode())
	}
	forgetMonitorTypes()
	second, err := monitorTypes(local)
	if err != nil {
		t.Fatal(err)
	}
	var a, b *btf.Struct
	if first.TypeByName("sk_buff", &a) != nil || second.TypeByName("sk_buff", &b) != nil {
		t.Fatal("no sk_buff in the kept types")
	}
	if !reflect.DeepEqual(a.Members, b.Members) {
		t.Errorf("read back, sk_buff is %v; kept, %v", b.Members, a.Members)
	}
	if err := os.WriteFile(blob, []byte("not BTF"), 0o600); err != nil {
		t.Fatal(err)
	}
	forgetMonitorTypes()
	if _, err := monitorTypes(local); err != nil {
		t.Fatalf("a damaged blob: %v", err)
	}
	if _, err := readMonitorTypes(key); err != nil {
		t.Errorf("the damaged blob was not made again: %v", err)
	}
}

// A blob others can write is not read: it would make the monitor read
// other fields.
func TestDropMonitorTypesNotReadWhenOthersCanWrite(t *testing.T) {
	cache, local := freshTypesCache(t)
	if _, err := monitorTypes(local); err != nil {
		t.Fatal(err)
	}
	key, _ := monitorTypesKey(local)
	blob := filepath.Join(cache, "btf", key+".btf")
	if err := os.Chmod(blob, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := readMonitorTypes(key); err == nil {
		t.Error("a blob others can write was read")
	}
}

// freshTypesCache starts t as a new process does, with a cache of its
// own and the temporary directory too (where the cache cannot be
// written, the microVM, earlier tests kept the types there), and returns
// the cache and the monitor's own types.
func freshTypesCache(t *testing.T) (string, *btf.Spec) {
	t.Helper()
	cache := t.TempDir()
	t.Setenv("NKSCRIPT_CACHE", cache)
	t.Setenv("TMPDIR", t.TempDir())
	t.Cleanup(forgetMonitorTypes)
	local, _, _ := monitorRelocations(t)
	forgetMonitorTypes()
	return cache, local
}

// forgetMonitorTypes makes the next monitorTypes call look for the types
// as a new process does.
func forgetMonitorTypes() {
	monitorKernel.Lock()
	monitorKernel.spec = nil
	monitorKernel.Unlock()
}

// writeBTFImage writes an ELF whose only section, .BTF, holds raw: what
// PrepareImageTypes reads of a kernel image.
func writeBTFImage(t *testing.T, path string, raw []byte) {
	t.Helper()
	names := []byte("\x00.BTF\x00.shstrtab\x00")
	const ehsize, shsize = 64, 64
	dataOff := uint64(ehsize)
	namesOff := dataOff + uint64(len(raw))
	shOff := (namesOff + uint64(len(names)) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, struct {
		Type, Machine                                        uint16
		Version                                              uint32
		Entry, Phoff, Shoff                                  uint64
		Flags                                                uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Shstrndx uint16
	}{Type: 2, Machine: 62, Version: 1, Shoff: shOff, Ehsize: ehsize, Shentsize: shsize, Shnum: 3, Shstrndx: 2})
	b.Write(raw)
	b.Write(names)
	b.Write(make([]byte, shOff-namesOff-uint64(len(names))))
	type section struct {
		Name, Type             uint32
		Flags, Addr, Off, Size uint64
		Link, Info             uint32
		Addralign, Entsize     uint64
	}
	binary.Write(&b, le, section{})
	binary.Write(&b, le, section{Name: 1, Type: 1, Off: dataOff, Size: uint64(len(raw)), Addralign: 1})
	binary.Write(&b, le, section{Name: 6, Type: 3, Off: namesOff, Size: uint64(len(names)), Addralign: 1})
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A microVM reads the types the host kept of the image it boots, and
// only if they are for its kernel; they relocate as its whole BTF does.
func TestDropMonitorTypesOfImage(t *testing.T) {
	t.Setenv("NKSCRIPT_CACHE", t.TempDir())
	t.Setenv("TMPDIR", t.TempDir())
	t.Cleanup(forgetMonitorTypes)
	local, relos, order := monitorRelocations(t)
	raw, err := os.ReadFile(vmlinuxBTF)
	if err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "vmlinux")
	writeBTFImage(t, image, raw)
	release := KernelRelease()
	path, err := PrepareImageTypes(image, release)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := PrepareImageTypes(image, release); err != nil || again != path {
		t.Errorf("a second PrepareImageTypes gave %q, %v; the first %q", again, err, path)
	}
	k, err := runningKernel()
	if err != nil {
		t.Fatal(err)
	}
	imageKey := typesKey(k.release, "", k.size, local)
	if _, err := readImageTypes(path, imageKey); err != nil {
		t.Fatalf("the image's types are not read on its kernel: %v", err)
	}
	t.Setenv(KernelTypesEnv, path)
	forgetMonitorTypes()
	spec, err := monitorTypes(local)
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(os.Getenv("NKSCRIPT_CACHE"), "btf")); len(entries) != 1 {
		t.Errorf("the cache holds %d blobs: the run did not take the image's", len(entries))
	}
	full, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	noIDs := func(btf.Type) (btf.TypeID, error) { return 0, nil }
	want, _ := btf.CORERelocate(relos, []*btf.Spec{full}, order, noIDs)
	got, err := btf.CORERelocate(relos, []*btf.Spec{spec}, order, noIDs)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("the image's types relocate the monitor differently (%v)", err)
	}
	other, err := PrepareImageTypes(image, release+"-other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readImageTypes(other, imageKey); err == nil {
		t.Error("the types of an image of another release were read")
	}
}
