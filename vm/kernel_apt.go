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

// downloadKernelDeb runs `apt-get download` for the pinned package into dir
// and returns the path of the .deb.
func downloadKernelDeb(ctx context.Context, k KernelSpec, dir string, log io.Writer) (string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("apt-get not found: fetching the default kernel needs a Debian-based host (or pass a kernel image)")
	}
	for _, tool := range []string{"dpkg-deb", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"dpkg-deb": "dpkg", "xz": "xz-utils"}[tool]
			return "", fmt.Errorf("%s not found: install the %s package", tool, pkg)
		}
	}
	if k.Backports && !backportsConfigured() {
		fmt.Fprintf(log, "nkscript: adding APT source %s\n", backportsSourceFile)
		if err := os.WriteFile(backportsSourceFile, []byte(backportsSource), 0o644); err != nil {
			return "", fmt.Errorf("add bookworm-backports source: %w", err)
		}
		if err := aptUpdate(ctx, log); err != nil {
			return "", err
		}
	}
	spec := k.Package + "=" + k.Version
	download := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil {
		// The package lists may be stale or missing: update once.
		if err := aptUpdate(ctx, log); err != nil {
			return "", err
		}
		out, err = download()
	}
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s", spec, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, k.Package+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: no .deb in %s", spec, dir)
	}
	return debs[0], nil
}

// aptUpdate runs `apt-get update`.
func aptUpdate(ctx context.Context, log io.Writer) error {
	fmt.Fprintf(log, "nkscript: apt-get update\n")
	out, err := exec.CommandContext(ctx, "apt-get", "update", "-q").CombinedOutput()
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
