package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nkscript/nkscript/internal/cachedir"
)

// cacheVersion changes when the layout or the keys of the cache change.
const cacheVersion = "nkscript-bpf-1"

// hashStrings hashes parts, each ended by a NUL byte, to hex.
func hashStrings(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashFile hashes the contents of the file at path to hex.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeAtomic writes data to path whole or not at all.
func writeAtomic(path string, data []byte) error { return cachedir.WriteFile(path, data, 0o755) }

// entry is one source's place in the cache: its first key, which names
// the file listing the headers its last compile read.
type entry struct {
	root string
	key  string
}

func (e entry) depsPath() string { return filepath.Join(e.root, e.key+".deps") }

// objectPath is where the object compiled with headers deps is kept.
func (e entry) objectPath(deps []string) (string, error) {
	parts := []string{e.key}
	for _, d := range deps {
		if isGenerated(e.root, d) {
			// Named by the hash of the BTF it was made from.
			parts = append(parts, d, "")
			continue
		}
		sum, err := hashFile(d)
		if err != nil {
			return "", err
		}
		parts = append(parts, d, sum)
	}
	return filepath.Join(e.root, hashStrings(parts...)+".o"), nil
}

// lookup returns the cached object of e, or "" when there is none or a
// header it was built with changed. vmlinuxOK says whether a generated
// vmlinux.h at a path is still the running kernel's.
func (e entry) lookup(vmlinuxOK func(string) bool) string {
	b, err := os.ReadFile(e.depsPath())
	if err != nil {
		return ""
	}
	deps := splitLines(string(b))
	for _, d := range deps {
		if isGenerated(e.root, d) && !vmlinuxOK(d) {
			return ""
		}
	}
	obj, err := e.objectPath(deps)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(obj); err != nil {
		return ""
	}
	return obj
}

// store keeps the object built at tmp, with the headers it read, and
// returns its path in the cache.
func (e entry) store(tmp string, deps []string) (string, error) {
	obj, err := e.objectPath(deps)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, obj); err != nil {
		return "", err
	}
	if err := writeAtomic(e.depsPath(), []byte(strings.Join(deps, "\n"))); err != nil {
		return "", err
	}
	return obj, nil
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
