package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// loadBootModules loads the modules the initramfs carries (those needed to
// mount the host's root and the overlay on /tmp) as its "order" file says:
// one chain of modules per line, each in order, the chains concurrently.
func loadBootModules() error {
	b, err := os.ReadFile(filepath.Join(guestBootMods, "order"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	errs := make([]error, len(lines))
	var wg sync.WaitGroup
	for i, line := range lines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, name := range strings.Fields(line) {
				if errs[i] = loadModule(filepath.Join(guestBootMods, name)); errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loadModule loads the module file path; a module already loaded is no
// error.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// guestModprobe is the guest kernel's module loader: the kernel runs it as
// `modprobe -q -- NAME` when it needs a module (a link type, a qdisc, ...).
// It resolves NAME through the index EnsureKernel wrote and loads the
// module's dependencies and the module.
func guestModprobe(args []string) int {
	var names []string
	quiet := false
	for _, a := range args {
		switch {
		case a == "-q":
			quiet = true
		case strings.HasPrefix(a, "-"):
		default:
			names = append(names, a)
		}
	}
	b, err := os.ReadFile(filepath.Join(guestModulesDir, moduleIndexFile))
	if err != nil {
		if !quiet {
			fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		}
		return 1
	}
	var idx moduleIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		return 1
	}
	status := 0
	for _, name := range names {
		if err := modprobe(&idx, name); err != nil {
			if !quiet {
				fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
			}
			status = 1
		}
	}
	return status
}

// modprobe loads the module that name (a module name or an alias) names,
// after its dependencies; a built-in module needs nothing.
func modprobe(idx *moduleIndex, name string) error {
	norm := strings.ReplaceAll(name, "-", "_")
	var mods []string
	if _, ok := idx.Modules[norm]; ok {
		mods = []string{norm}
	} else {
		for _, b := range idx.Builtin {
			if b == norm {
				return nil
			}
		}
		for _, a := range idx.Aliases {
			if ok, _ := filepath.Match(a[0], name); ok && !slices.Contains(mods, a[1]) {
				mods = append(mods, a[1])
			}
		}
		sort.Strings(mods)
	}
	if len(mods) == 0 {
		return fmt.Errorf("module %s not found", name)
	}
	for _, m := range mods {
		e := idx.Modules[m]
		for _, d := range append(e.Deps, m) {
			if err := loadModule(filepath.Join(guestModulesDir, idx.Modules[d].Path)); err != nil {
				return err
			}
		}
	}
	return nil
}
