package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

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

// moduleName returns the name of the module in the file rel: its base
// name before ".ko", with underscores for dashes.
func moduleName(rel string) string {
	base := path.Base(rel)
	base = base[:strings.Index(base, ".ko")]
	return strings.ReplaceAll(base, "-", "_")
}

// prepareModules decompresses the kept modules of the extracted module tree
// src (lib/modules/<release>) into dst and writes the index.
func prepareModules(ctx context.Context, src, dst string) error {
	all, err := findModules(src)
	if err != nil {
		return err
	}
	info, err := copyKeptModules(ctx, src, dst, all)
	if err != nil {
		return err
	}
	return writeModuleIndex(src, dst, all, info)
}

// findModules returns the modules in the module tree src: their paths
// relative to src, by module name.
func findModules(src string) (map[string]string, error) {
	all := map[string]string{}
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
		return nil, fmt.Errorf("walk modules: %w", err)
	}
	return all, nil
}

// copyKeptModules writes the modules keepModule selects, and their
// dependencies, from src to dst, uncompressed and without signatures, and
// returns the modinfo of each by name. all is what findModules returned.
func copyKeptModules(ctx context.Context, src, dst string, all map[string]string) (map[string]modinfo, error) {
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
			return nil, err
		}
		var next []string
		for _, n := range queue {
			file := filepath.Join(dst, uncompressedName(all[n]))
			if err := stripSignatureFile(file); err != nil {
				return nil, err
			}
			mi, err := readModinfo(file)
			if err != nil {
				return nil, err
			}
			info[n] = mi
			for _, d := range mi.depends {
				if _, ok := info[d]; ok || slices.Contains(next, d) || slices.Contains(queue, d) {
					continue
				}
				if _, ok := all[d]; !ok {
					return nil, fmt.Errorf("module %s: dependency %s not found", n, d)
				}
				next = append(next, d)
			}
		}
		queue = next
	}
	return info, nil
}

// writeModuleIndex writes the index of the modules info, whose paths
// relative to src all holds, to dst, with the built-in modules of src.
func writeModuleIndex(src, dst string, all map[string]string, info map[string]modinfo) error {
	idx := moduleIndex{Modules: map[string]moduleEntry{}}
	for name, mi := range info {
		deps, err := loadOrder(name, info)
		if err != nil {
			return err
		}
		idx.Modules[name] = moduleEntry{Path: uncompressedName(all[name]), Deps: deps[:len(deps)-1]}
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

// uncompressedName returns the name of the module file rel uncompressed.
func uncompressedName(rel string) string {
	return strings.TrimSuffix(strings.TrimSuffix(rel, ".xz"), ".zst")
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
