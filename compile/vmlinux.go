package compile

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KernelBTF is the running kernel's BTF, from which vmlinux.h is made.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// vmlinuxSubdir holds one directory per kernel BTF, named by its hash,
// each with the vmlinux.h bpftool generated from it.
const vmlinuxSubdir = "vmlinux"

// btfInfo finds, once per compile, the directory of the vmlinux.h of a
// kernel's BTF.
type btfInfo struct {
	root, btf string
	dir       string
	err       error
	done      bool
}

// hashDir returns the directory vmlinux.h of the BTF belongs in, without
// creating it.
func (b *btfInfo) hashDir() (string, error) {
	if !b.done {
		b.done = true
		sum, err := b.hash()
		if err != nil {
			b.err = fmt.Errorf("kernel BTF for vmlinux.h: %w (the kernel needs CONFIG_DEBUG_INFO_BTF)", err)
		} else {
			b.dir = filepath.Join(b.root, vmlinuxSubdir, sum[:32])
		}
	}
	return b.dir, b.err
}

// hash hashes the BTF. The running kernel's cannot change until it
// reboots, so its hash is kept, per boot, in the cache: hashing its
// megabytes would cost a cached compile more than everything else.
func (b *btfInfo) hash() (string, error) {
	if b.btf != KernelBTF {
		return hashFile(b.btf)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return hashFile(b.btf)
	}
	memo := filepath.Join(b.root, "boot", strings.TrimSpace(string(boot)))
	if sum, err := os.ReadFile(memo); err == nil && len(sum) == 64 {
		return string(sum), nil
	}
	sum, err := hashFile(b.btf)
	if err == nil {
		writeAtomic(memo, []byte(sum))
	}
	return sum, err
}

// current says whether header is the vmlinux.h of the BTF.
func (b *btfInfo) current(header string) bool {
	dir, err := b.hashDir()
	return err == nil && filepath.Dir(header) == dir
}

// generate returns the directory holding the vmlinux.h of the BTF,
// running bpftool when it is not there yet.
func (b *btfInfo) generate() (string, error) {
	dir, err := b.hashDir()
	if err != nil {
		return "", err
	}
	header := filepath.Join(dir, "vmlinux.h")
	if _, err := os.Stat(header); err == nil {
		return dir, nil
	}
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/bpftool"); serr != nil {
			return "", fmt.Errorf("generate vmlinux.h: bpftool not found: install it (hack/setup.sh does)")
		}
		bpftool = "/usr/sbin/bpftool"
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bpftool, "btf", "dump", "file", b.btf, "format", "c")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("generate vmlinux.h: bpftool btf dump file %s: %w: %s", b.btf, err, strings.TrimSpace(stderr.String()))
	}
	if err := writeAtomic(header, out); err != nil {
		return "", fmt.Errorf("generate vmlinux.h: %w", err)
	}
	return dir, nil
}

// isGenerated says whether path is a vmlinux.h generated under root.
func isGenerated(root, path string) bool {
	return strings.HasPrefix(path, filepath.Join(root, vmlinuxSubdir)+string(filepath.Separator))
}

// mentionsVmlinux says whether a source names vmlinux.h itself; sources
// that include it through their own headers are found when clang does not
// find it.
func mentionsVmlinux(src []byte) bool { return bytes.Contains(src, []byte("vmlinux.h")) }
