package vm

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for what the runner reads from kernel files: the bzImage
// header's version string, the kernel config, module signatures and ELF
// notes. Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzInspectKernel$' -fuzztime 20s ./vm/

// fzTempDir returns a directory for the files of one fuzzing process, on
// tmpfs when there is one: creating and deleting a file per execution on
// ext4 slows fuzzing a hundredfold.
func fzTempDir(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "nkscript-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

// fzBzImage returns a minimal bzImage header whose version string, at
// offset 0x200+off, is version.
func fzBzImage(version string, off int) []byte {
	b := make([]byte, max(0x210, 0x200+off+len(version)+1))
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], uint16(off))
	copy(b[0x200+off:], version)
	return b
}

// fzVersion is what the bzImage header says the release is, per the x86
// boot protocol: a NUL-terminated string at 0x200 plus the 16-bit offset
// at 0x20e, whose first word is the release (bzImageVersion reads at most
// 256 bytes of it).
func fzVersion(b []byte) (string, bool) {
	if len(b) < 0x210 || string(b[0x202:0x206]) != "HdrS" {
		return "", false
	}
	off := 0x200 + int(binary.LittleEndian.Uint16(b[0x20e:]))
	if off == 0x200 || off >= len(b) {
		return "", false
	}
	s := b[off:min(len(b), off+256)]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	f := strings.Fields(string(s))
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

// fzConfigHas is configHas without a line length limit.
func fzConfigHas(config []byte, line string) bool {
	for _, l := range strings.Split(string(config), "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// FuzzInspectKernel runs InspectKernel on arbitrary image and config
// contents: it never panics or hangs, reads exactly the release the header
// names (one word: no spaces, no NUL), and reports netkit exactly when a
// config beside the image has the line CONFIG_NETKIT=y.
func FuzzInspectKernel(f *testing.F) {
	const release = "6.12.43+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.43-1~bpo12+1 (2025-08-27)"
	f.Add(fzBzImage(release, 0x3000), []byte("CONFIG_NETKIT=y\n"), uint8(0))
	f.Add(fzBzImage(release, 0x10), []byte("# CONFIG_NETKIT is not set\n"), uint8(1))
	f.Add(fzBzImage("6.1.0", 0x10), []byte("CONFIG_A=y\r\n  CONFIG_NETKIT=y  "), uint8(2))
	f.Add(fzBzImage(" \t", 0x10), []byte(nil), uint8(3))
	f.Add(fzBzImage("", 0x10), []byte(nil), uint8(4))
	f.Add(fzBzImage("x", 0), []byte(nil), uint8(5))
	f.Add(fzBzImage(strings.Repeat("7", 300), 0x10), []byte(nil), uint8(6))
	f.Add(fzBzImage("6.1", 0xfff0)[:0x300], []byte(nil), uint8(7))
	f.Add([]byte("HdrS"), []byte(nil), uint8(8))
	f.Add([]byte{}, []byte(nil), uint8(0))
	// A config line over 64 KiB, which bufio.Scanner refuses, does not hide
	// what follows.
	f.Add(fzBzImage("6.1", 0x10), []byte(strings.Repeat("#", 70000)+"\nCONFIG_NETKIT=y\n"), uint8(3))
	// A real header, when the pinned kernel is cached (not committed: the
	// version string is ~13 KiB in).
	if kdir, err := kernelsDir(); err == nil {
		if b, err := os.ReadFile(filepath.Join(kdir, DefaultKernelRelease, "vmlinuz")); err == nil && len(b) > 0x8000 {
			f.Add(b[:0x8000], []byte("CONFIG_NETKIT=y\n"), uint8(0))
		}
	}
	base := fzTempDir(f)
	f.Fuzz(func(t *testing.T, image, config []byte, layout uint8) {
		dir, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		// layout picks the image's name and where its config is.
		imgName := []string{"vmlinuz", "vmlinuz-6.1", "bzImage"}[layout%3]
		want, ok := fzVersion(image)
		cfgName := ""
		switch layout / 3 % 4 {
		case 1:
			cfgName = "config"
		case 2:
			cfgName = "config-6.1" // found for vmlinuz-6.1 only
		case 3:
			if ok && !strings.Contains(want, "/") && len(want) < 200 {
				cfgName = "config-" + want
			}
		}
		img := filepath.Join(dir, imgName)
		if err := os.WriteFile(img, image, 0o644); err != nil {
			t.Fatal(err)
		}
		if cfgName != "" {
			if err := os.WriteFile(filepath.Join(dir, cfgName), config, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		ki, err := InspectKernel(img)
		if !ok {
			if err == nil {
				t.Fatalf("InspectKernel of a %d-byte image without a version string: %+v", len(image), ki)
			}
			if !strings.Contains(err.Error(), img) {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("InspectKernel: %v (the header names %q)", err, want)
		}
		if ki.Version != want {
			t.Fatalf("InspectKernel read release %q, the header names %q", ki.Version, want)
		}
		if ki.Version == "" || len(ki.Version) > 256 || strings.ContainsAny(ki.Version, " \t\n\r\x00") {
			t.Fatalf("release %q", ki.Version)
		}
		if ki.Path != img {
			t.Fatalf("Path %q, want %q", ki.Path, img)
		}
		found := cfgName == "config" || (cfgName == "config-6.1" && imgName == "vmlinuz-6.1") || (cfgName != "" && cfgName == "config-"+want)
		if !found {
			if ki.Config != "" || ki.Netkit {
				t.Fatalf("no config beside %s, but Config=%q Netkit=%v", imgName, ki.Config, ki.Netkit)
			}
			return
		}
		if ki.Config != filepath.Join(dir, cfgName) {
			t.Fatalf("Config %q, want %q", ki.Config, filepath.Join(dir, cfgName))
		}
		if wantNK := fzConfigHas(config, "CONFIG_NETKIT=y"); ki.Netkit != wantNK {
			if wantNK && fzLongLine(config) {
				// As configHas would if it read with a bufio.Scanner,
				// which stops at the first line over 64 KiB.
				t.Fatal("configHas misses CONFIG_NETKIT=y after a line longer than 64 KiB")
			}
			t.Fatalf("Netkit=%v for config %q", ki.Netkit, config)
		}
	})
}

// fzLongLine reports whether config has a line bufio.Scanner refuses.
func fzLongLine(config []byte) bool {
	for _, l := range bytes.Split(config, []byte("\n")) {
		if len(l) >= bufio.MaxScanTokenSize {
			return true
		}
	}
	return false
}

// FuzzStripModuleSignature: the result is ko itself when ko does not end
// with a well-formed signature, and otherwise ko without the signature,
// its 12-byte descriptor and the magic; never a panic.
func FuzzStripModuleSignature(f *testing.F) {
	signed := func(body []byte, sig int, claimed uint32) []byte {
		b := append(bytes.Clone(body), bytes.Repeat([]byte{0x30}, sig)...)
		desc := make([]byte, 12)
		binary.BigEndian.PutUint32(desc[8:], claimed)
		b = append(b, desc...)
		return append(b, moduleSigMagic...)
	}
	f.Add([]byte("\x7fELF module"))
	f.Add(signed([]byte("\x7fELF module"), 5, 5))
	f.Add(signed(nil, 0, 0))
	f.Add(signed([]byte("x"), 3, 4))
	f.Add(signed([]byte("x"), 3, 0xffffffff))
	f.Add([]byte(moduleSigMagic))
	f.Add(append(make([]byte, 11), moduleSigMagic...))
	f.Fuzz(func(t *testing.T, ko []byte) {
		in := bytes.Clone(ko)
		got := stripModuleSignature(ko)
		if !bytes.Equal(ko, in) {
			t.Fatal("stripModuleSignature changed its input")
		}
		if !bytes.HasPrefix(ko, got) {
			t.Fatalf("result is not a prefix of the module")
		}
		end := len(ko) - len(moduleSigMagic)
		want := len(ko)
		if bytes.HasSuffix(ko, []byte(moduleSigMagic)) && end >= 12 {
			if n := int(binary.BigEndian.Uint32(ko[end-4 : end])); n <= end-12 {
				want = end - 12 - n
			}
		}
		if len(got) != want {
			t.Fatalf("stripped to %d of %d bytes, want %d", len(got), len(ko), want)
		}
	})
}

// fzELF returns a little-endian ELF64 executable with one PT_NOTE segment
// holding notes.
func fzELF(notes []byte) []byte {
	const ehsize, phsize = 64, 56
	b := make([]byte, ehsize+phsize, ehsize+phsize+len(notes))
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 1) // e_phnum
	ph := b[ehsize:]
	le.PutUint32(ph[0:], uint32(elf.PT_NOTE))
	le.PutUint64(ph[8:], ehsize+phsize) // p_offset
	le.PutUint64(ph[32:], uint64(len(notes)))
	le.PutUint64(ph[40:], uint64(len(notes)))
	return append(b, notes...)
}

// fzNote encodes one ELF note.
func fzNote(name string, typ uint32, desc []byte) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(name)+1))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(b[8:], typ)
	b = append(b, name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// fzHasPVHNote walks the notes of notes as the ELF spec lays them out.
func fzHasPVHNote(notes []byte) bool {
	for len(notes) >= 12 {
		namesz := int(binary.LittleEndian.Uint32(notes[0:]))
		descsz := int(binary.LittleEndian.Uint32(notes[4:]))
		typ := binary.LittleEndian.Uint32(notes[8:])
		name := notes[12:min(len(notes), 12+namesz)]
		if typ == 18 && string(bytes.TrimRight(name, "\x00")) == "Xen" {
			return true
		}
		next := 12 + (namesz+3)&^3 + (descsz+3)&^3
		if next > len(notes) {
			break
		}
		notes = notes[next:]
	}
	return false
}

// FuzzCheckPVH runs checkPVH on an ELF whose note segment is fuzzed (and,
// with raw, on arbitrary bytes): no panic, and the PVH entry is found
// exactly when a well-formed Xen note of type 18 is there.
func FuzzCheckPVH(f *testing.F) {
	f.Add(fzNote("Xen", 18, []byte{0, 0, 0, 1}), false)
	f.Add(append(fzNote("GNU", 3, make([]byte, 20)), fzNote("Xen", 18, []byte{1, 2, 3, 4})...), false)
	f.Add(fzNote("Xen", 17, []byte{1}), false)
	f.Add(fzNote("Xe", 18, nil), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0}, false)
	f.Add(fzELF(fzNote("Xen", 18, []byte{0, 0, 0, 1})), true)
	f.Add([]byte("\x7fELF"), true)
	base := fzTempDir(f)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		file := data
		if !raw {
			file = fzELF(data)
		}
		p := filepath.Join(base, "vmlinux")
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		err := checkPVH(p)
		if raw {
			return // only: no panic
		}
		if want := fzHasPVHNote(data); (err == nil) != want {
			t.Fatalf("checkPVH = %v; a Xen PVH note is there: %v", err, want)
		}
	})
}
