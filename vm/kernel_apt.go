package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// downloadKernelDebs runs `apt-get download` for the pinned packages of k
// into dir, checks their SHA256 and returns their paths, Package first.
// When the archive no longer has k's version, it downloads the newest
// kernel of k's series instead and returns its spec (see resolveFallback);
// else it returns k.
func downloadKernelDebs(ctx context.Context, k KernelSpec, kdir, dir string, log io.Writer) (KernelSpec, []string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return k, nil, errors.New("apt-get not found: fetching the default kernel needs a Debian-based host (or pass a kernel image)")
	}
	for _, tool := range []string{"dpkg-deb", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"dpkg-deb": "dpkg", "xz": "xz-utils"}[tool]
			return k, nil, fmt.Errorf("%s not found: install the %s package", tool, pkg)
		}
	}
	aptOpts, err := aptOptions(ctx, k.Suite, kdir, log)
	if err != nil {
		return k, nil, err
	}
	if k, err = pinnedOrFallback(ctx, k, aptOpts, log); err != nil {
		return k, nil, err
	}
	var paths []string
	for _, d := range k.debs() {
		path, err := downloadDeb(ctx, d, aptOpts, dir, log)
		if err != nil {
			return k, nil, err
		}
		if err := checkSHA256(path, d.SHA256); err != nil {
			return k, nil, err
		}
		paths = append(paths, path)
	}
	return k, paths, nil
}

// aptOptions returns the apt-get options that reach suite. As root, the
// suites of the host's own release come through its APT sources (adding
// bookworm-backports to them if missing); other suites, and every suite
// for other users, through a private APT configuration under kdir, which
// needs no privileges.
func aptOptions(ctx context.Context, suite, kdir string, log io.Writer) ([]string, error) {
	if os.Geteuid() != 0 {
		return privateAPT(ctx, suite, kdir, log)
	}
	switch suite {
	case "bookworm":
		return nil, nil
	case "bookworm-backports":
		if !backportsConfigured() {
			fmt.Fprintf(log, "nkscript: adding APT source %s\n", backportsSourceFile)
			if err := os.WriteFile(backportsSourceFile, []byte(backportsSource), 0o644); err != nil {
				return nil, fmt.Errorf("add bookworm-backports source: %w", err)
			}
			if err := aptUpdate(ctx, nil, log); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	return privateAPT(ctx, suite, kdir, log)
}

// pinnedOrFallback returns k if the archive has its version (updating
// the package lists once when it seems not to), else the newest kernel of
// its series, saying so on log.
func pinnedOrFallback(ctx context.Context, k KernelSpec, opts []string, log io.Writer) (KernelSpec, error) {
	main := Deb{k.Package, k.Version, k.SHA256}
	ok, err := inArchive(ctx, opts, main)
	if err == nil && !ok {
		// The package lists may be stale: update once.
		if err := aptUpdate(ctx, opts, log); err != nil {
			return k, err
		}
		ok, err = inArchive(ctx, opts, main)
	}
	if err != nil || ok {
		return k, err
	}
	fb, err := resolveFallback(ctx, k, opts)
	if err != nil {
		return k, err
	}
	fmt.Fprintf(log, "nkscript: pinned %s is no longer in the archive; fetching the newest of its series, %s=%s\n", fb.pinned, fb.Package, fb.Version)
	return fb, nil
}

// downloadDeb runs `apt-get download` for d into dir with the APT options
// opts, updating the package lists once if it fails.
func downloadDeb(ctx context.Context, d Deb, opts []string, dir string, log io.Writer) (string, error) {
	spec := d.Package + "=" + d.Version
	download := func() ([]byte, error) {
		args := append(append([]string{}, opts...), "download", "-q", "-o", "APT::Sandbox::User=root", spec)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil {
		// The package lists may be stale or missing: update once.
		if err := aptUpdate(ctx, opts, log); err != nil {
			return "", err
		}
		out, err = download()
	}
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s", spec, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, d.Package+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: no .deb in %s", spec, dir)
	}
	return debs[0], nil
}

// privateAPT writes an APT configuration for suite under kdir (a sources
// list signed by Debian's archive keyring, its own package lists and
// cache) and returns the apt-get options that use it, so that a kernel
// of another Debian release is downloaded without adding its suite to
// the host's sources, where apt-get install would see it.
func privateAPT(ctx context.Context, suite, kdir string, log io.Writer) ([]string, error) {
	root := filepath.Join(kdir, ".apt", suite)
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("private APT configuration: %w", err)
		}
	}
	list := filepath.Join(root, "sources.list")
	src := fmt.Sprintf("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n", suite)
	if err := os.WriteFile(list, []byte(src), 0o644); err != nil {
		return nil, fmt.Errorf("private APT configuration: %w", err)
	}
	opts := []string{
		"-o", "Dir::Etc::sourcelist=" + list, "-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::State::Lists=" + filepath.Join(root, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(root, "cache"),
	}
	if lists, _ := filepath.Glob(filepath.Join(root, "lists", "*_Packages*")); len(lists) == 0 {
		if err := aptUpdate(ctx, opts, log); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// aptUpdated holds the APT options (joined) apt-get update ran with in
// this process: their lists are fresh, updating them again gains nothing.
var aptUpdated struct {
	sync.Mutex
	done map[string]bool
}

// aptUpdate runs `apt-get update` with the APT options opts, once per
// process.
func aptUpdate(ctx context.Context, opts []string, log io.Writer) error {
	key := strings.Join(opts, "\x00")
	aptUpdated.Lock()
	defer aptUpdated.Unlock()
	if aptUpdated.done[key] {
		return nil
	}
	fmt.Fprintf(log, "nkscript: apt-get update\n")
	args := append(append([]string{}, opts...), "update", "-q", "-o", "APT::Sandbox::User=root")
	out, err := exec.CommandContext(ctx, "apt-get", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, bytes.TrimSpace(out))
	}
	if aptUpdated.done == nil {
		aptUpdated.done = map[string]bool{}
	}
	aptUpdated.done[key] = true
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

// checkSHA256 makes sure the SHA256 of file is want (hex).
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
