package vm

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// initramfs returns an uncompressed cpio archive with bin as /init plus the
// kernel modules needed to mount the host's root and /tmp, cached under
// ~/.cache/nkscript/initramfs/ by the hash of both.
func initramfs(bin string, ki KernelInfo) (string, error) {
	if err := checkStatic(bin); err != nil {
		return "", err
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key, mods, err := initramfsKey(f, ki)
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "initramfs")
	name := filepath.Join(dir, key+".cpio")
	if _, err := os.Stat(name); err == nil {
		now := time.Now()
		os.Chtimes(name, now, now) // mark as recently used
		return name, nil
	}
	if err := writeInitramfs(dir, name, f, mods); err != nil {
		return "", err
	}
	pruneInitramfs(dir, 8)
	return name, nil
}

// initramfsKey returns the name under which the initramfs for the binary
// bin and the kernel ki is cached, a hash of what goes into it, and the
// kernel's boot modules (see bootModules).
func initramfsKey(bin *os.File, ki KernelInfo) (string, [][]string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, bin); err != nil {
		return "", nil, fmt.Errorf("hash %s: %w", bin.Name(), err)
	}
	mods, err := bootModules(ki)
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(h, "\x00initramfs v1\x00%s\x00", ki.Version)
	for _, chain := range mods {
		fmt.Fprintf(h, "%s\x00", strings.Join(chain, "\x01"))
	}
	return hex.EncodeToString(h.Sum(nil))[:32], mods, nil
}

// writeInitramfs writes the initramfs holding bin and the module chains
// mods to name, in dir, through a temporary file.
func writeInitramfs(dir, name string, bin *os.File, mods [][]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w := newCpioWriter(tmp)
	for _, d := range []string{"dev", "proc", "sys", guestStateDir[1:], guestBootMods[1:]} {
		if err := w.Dir(d, 0o755); err != nil {
			return err
		}
	}
	st, err := bin.Stat()
	if err != nil {
		return err
	}
	if _, err := bin.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := w.File("init", 0o755, st.Size(), bin); err != nil {
		return err
	}
	if err := writeBootModules(w, mods); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// writeBootModules adds the module chains mods to the archive, without
// their signatures, and the "order" file that lists them for the guest:
// one chain per line.
func writeBootModules(w *cpioWriter, mods [][]string) error {
	var order []string // one line per chain
	i := 0
	for _, chain := range mods {
		var line []string
		for _, m := range chain {
			data, err := os.ReadFile(m)
			if err != nil {
				return err
			}
			data = stripModuleSignature(data)
			base := fmt.Sprintf("%02d-%s", i, filepath.Base(m))
			i++
			if err := w.File(guestBootMods[1:]+"/"+base, 0o644, int64(len(data)), bytes.NewReader(data)); err != nil {
				return err
			}
			line = append(line, base)
		}
		order = append(order, strings.Join(line, " "))
	}
	if len(order) == 0 {
		return nil
	}
	o := strings.Join(order, "\n") + "\n"
	return w.File(guestBootMods[1:]+"/order", 0o644, int64(len(o)), strings.NewReader(o))
}

// pruneInitramfs removes all but the keep most recently used images.
func pruneInitramfs(dir string, keep int) {
	ents, _ := filepath.Glob(filepath.Join(dir, "*.cpio"))
	type img struct {
		path string
		t    time.Time
	}
	var imgs []img
	for _, e := range ents {
		if fi, err := os.Stat(e); err == nil {
			imgs = append(imgs, img{e, fi.ModTime()})
		}
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].t.After(imgs[j].t) })
	for i := keep; i < len(imgs); i++ {
		os.Remove(imgs[i].path)
	}
}

// bootModules returns the module files the guest needs to mount the host's
// root over 9p and the overlay on /tmp, none if the kernel has them built in
// or comes without modules, as chains: each chain in load order, the chains
// independent of each other, so that the guest loads them concurrently.
func bootModules(ki KernelInfo) ([][]string, error) {
	if ki.Modules == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(ki.Modules, moduleIndexFile))
	if err != nil {
		return nil, err
	}
	var idx moduleIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", moduleIndexFile, err)
	}
	var chains [][]string
	// virtio_pci and virtio_console first: on kernels that have them as
	// modules, the 9p transport and the control ports sit on them.
	for _, want := range []string{"virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay"} {
		e, ok := idx.Modules[want]
		if !ok {
			continue // built in, or not available
		}
		need := append(append([]string(nil), e.Deps...), want)
		// One chain for this module and every chain holding one of its
		// dependencies, in order.
		var chain []string
		rest := chains[:0:0]
		for _, c := range chains {
			shared := false
			for _, m := range need {
				shared = shared || slices.Contains(c, m)
			}
			if shared {
				chain = append(chain, c...)
			} else {
				rest = append(rest, c)
			}
		}
		for _, m := range need {
			if !slices.Contains(chain, m) {
				chain = append(chain, m)
			}
		}
		chains = append(rest, chain)
	}
	for _, chain := range chains {
		for i, m := range chain {
			chain[i] = filepath.Join(ki.Modules, idx.Modules[m].Path)
		}
	}
	return chains, nil
}

// checkStatic makes sure bin can run as /init in a guest with no shared
// libraries: an amd64 ELF executable without an interpreter.
func checkStatic(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("guest binary %s: %w", bin, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("guest binary %s: not an amd64 executable", bin)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("guest binary %s is dynamically linked: build it with CGO_ENABLED=0", bin)
		}
	}
	return nil
}
