package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
)

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
