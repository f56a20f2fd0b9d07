package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// kernelFeatures are what a lab kernel may have, each with the config
// options it takes (=y or, where a module will do, =m too).
var kernelFeatures = map[string][]string{
	"netkit":    {"CONFIG_NETKIT=y"},
	"tcx":       {"CONFIG_NET_XGRESS=y"},
	"BTF":       {"CONFIG_DEBUG_INFO_BTF=y"},
	"9p":        {"CONFIG_NET_9P_VIRTIO", "CONFIG_9P_FS"},
	"virtio":    {"CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_CONSOLE"},
	"overlayfs": {"CONFIG_OVERLAY_FS"},
}

// checkFeatures makes sure the kernel config at path has every feature
// of k.Features.
func (k KernelSpec) checkFeatures(path string) error {
	config, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", k.Package, err)
	}
	var missing []string
	for _, f := range k.Features {
		for _, opt := range kernelFeatures[f] {
			if !strings.Contains(opt, "=") {
				if configHas(config, opt+"=y") || configHas(config, opt+"=m") {
					continue
				}
			} else if configHas(config, opt) {
				continue
			}
			missing = append(missing, fmt.Sprintf("%s (%s)", f, opt))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s=%s lacks %s", k.Package, k.Version, strings.Join(missing, ", "))
	}
	return nil
}

// featureList is k.Features in prose: "netkit, tcx, BTF, 9p and virtio".
func (k KernelSpec) featureList() string {
	f := k.Features
	switch len(f) {
	case 0:
		return "nothing checked"
	case 1:
		return f[0]
	}
	return strings.Join(f[:len(f)-1], ", ") + " and " + f[len(f)-1]
}

// errNotInArchive means the archive no longer has a pinned package.
var errNotInArchive = errors.New("no longer in the archive")

// debStanza is one package version apt-cache show describes.
type debStanza struct {
	Package, Version, SHA256 string
}

// aptShow runs `apt-cache show` for names (name or name=version) with
// the APT options opts and returns the versions the archive offers: those
// with a checksum, not the dpkg status of installed packages.
func aptShow(ctx context.Context, opts []string, names ...string) ([]debStanza, error) {
	args := append(append([]string{}, opts...), "show")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-cache", append(args, names...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(stderr.String(), "No packages found") {
		return nil, fmt.Errorf("apt-cache show: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var (
		all []debStanza
		cur debStanza
	)
	flush := func() {
		if cur.Package != "" && cur.Version != "" && cur.SHA256 != "" {
			all = append(all, cur)
		}
		cur = debStanza{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
		case k == "Package":
			cur.Package = v
		case k == "Version":
			cur.Version = v
		case k == "SHA256":
			cur.SHA256 = v
		}
	}
	flush()
	return all, nil
}

// inArchive reports whether the archive, as the APT options opts see it,
// has d's version.
func inArchive(ctx context.Context, opts []string, d Deb) (bool, error) {
	st, err := aptShow(ctx, opts, d.Package+"="+d.Version)
	if err != nil {
		return false, err
	}
	for _, s := range st {
		if s.Package == d.Package && s.Version == d.Version {
			return true, nil
		}
	}
	return false, nil
}

// seriesPackages returns the packages of the archive whose name is
// prefix followed by a release of series (a regular expression).
func seriesPackages(ctx context.Context, opts []string, prefix, series string) ([]string, error) {
	re, err := regexp.Compile("^" + regexp.QuoteMeta(prefix) + "(" + series + ")$")
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, opts...), "pkgnames", prefix)
	out, err := exec.CommandContext(ctx, "apt-cache", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache pkgnames %s: %w", prefix, err)
	}
	var names []string
	for _, n := range strings.Fields(string(out)) {
		if re.MatchString(n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// newerVersion reports whether the Debian version a is newer than b.
func newerVersion(ctx context.Context, a, b string) bool {
	return exec.CommandContext(ctx, "dpkg", "--compare-versions", a, "gt", b).Run() == nil
}

// resolveFallback returns the spec of the newest kernel of k's series the
// archive has (k.Series: same major and minor, same flavour), its parts
// of the same version, each with the checksum the archive gives.
func resolveFallback(ctx context.Context, k KernelSpec, opts []string) (KernelSpec, error) {
	if k.Series == "" {
		return KernelSpec{}, fmt.Errorf("%s=%s is %w and has no series to fall back to", k.Package, k.Version, errNotInArchive)
	}
	prefix := strings.TrimSuffix(k.Package, k.Release)
	names, err := seriesPackages(ctx, opts, prefix, k.Series)
	if err != nil {
		return KernelSpec{}, err
	}
	var best debStanza
	if len(names) > 0 {
		all, err := aptShow(ctx, opts, names...)
		if err != nil {
			return KernelSpec{}, err
		}
		for _, s := range all {
			if best.Package == "" || newerVersion(ctx, s.Version, best.Version) {
				best = s
			}
		}
	}
	if best.Package == "" {
		return KernelSpec{}, fmt.Errorf("%s=%s is %w, nor is any %s%s", k.Package, k.Version, errNotInArchive, prefix, k.Series)
	}
	fb := k
	fb.Package, fb.Version, fb.SHA256 = best.Package, best.Version, best.SHA256
	fb.Release = strings.TrimPrefix(best.Package, prefix)
	fb.Parts = nil
	for _, p := range k.Parts {
		d := Deb{Package: strings.TrimSuffix(p.Package, k.Release) + fb.Release, Version: fb.Version}
		st, err := aptShow(ctx, opts, d.Package+"="+d.Version)
		if err != nil {
			return KernelSpec{}, err
		}
		for _, s := range st {
			if s.Package == d.Package && s.Version == d.Version {
				d.SHA256 = s.SHA256
			}
		}
		if d.SHA256 == "" {
			return KernelSpec{}, fmt.Errorf("fallback for %s: the archive has %s=%s but not %s=%s", k.Package, fb.Package, fb.Version, d.Package, d.Version)
		}
		fb.Parts = append(fb.Parts, d)
	}
	fb.pinned = k.Package + "=" + k.Version
	return fb, nil
}

// cachedFallback looks in kdir for a kernel fetched in place of the pinned
// kernel k because the archive no longer had it.
func cachedFallback(kdir string, k KernelSpec) (KernelInfo, bool) {
	ents, err := os.ReadDir(kdir)
	if err != nil {
		return KernelInfo{}, false
	}
	pinned := k.Package + "=" + k.Version
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(kdir, e.Name())
		st, err := readStamp(dir)
		if err != nil || st.Pinned != pinned {
			continue
		}
		if ki, err := cachedKernel(dir); err == nil {
			return ki, true
		}
	}
	return KernelInfo{}, false
}

// sayFallback tells log which kernel replaces the pinned one and why.
func sayFallback(log io.Writer, fb KernelSpec) {
	fmt.Fprintf(log, "nkscript: pinned %s is no longer in the archive; using %s=%s (sha256 %s), which has %s\n",
		fb.pinned, fb.Package, fb.Version, fb.SHA256, fb.featureList())
}
