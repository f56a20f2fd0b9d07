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
// The suites of the host's own release come through its APT sources;
// others through a private APT configuration under kdir.
func downloadKernelDebs(ctx context.Context, k KernelSpec, kdir, dir string, log io.Writer) ([]string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, errors.New("apt-get not found: fetching the default kernel needs a Debian-based host (or pass a kernel image)")
	}
	for _, tool := range []string{"dpkg-deb", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"dpkg-deb": "dpkg", "xz": "xz-utils"}[tool]
			return nil, fmt.Errorf("%s not found: install the %s package", tool, pkg)
		}
	}
	var aptOpts []string
	switch k.Suite {
	case "bookworm":
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
	default:
		var err error
		if aptOpts, err = privateAPT(ctx, k.Suite, kdir, log); err != nil {
			return nil, err
		}
	}
	var paths []string
	for _, d := range k.debs() {
		path, err := downloadDeb(ctx, d, aptOpts, dir, log)
		if err != nil {
			return nil, err
		}
		if err := checkSHA256(path, d.SHA256); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
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

// aptUpdate runs `apt-get update` with the APT options opts.
func aptUpdate(ctx context.Context, opts []string, log io.Writer) error {
	fmt.Fprintf(log, "nkscript: apt-get update\n")
	args := append(append([]string{}, opts...), "update", "-q", "-o", "APT::Sandbox::User=root")
	out, err := exec.CommandContext(ctx, "apt-get", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, bytes.TrimSpace(out))
	}
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
