package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
)

// TestKernelFallbackResolves asks the real archive, through a private APT
// configuration in a temporary directory (a few hundred kB of package
// lists, no kernel download), for the kernel that replaces a pinned
// version it does not have: the newest of the same series, with its
// checksum as the archive gives it, which apt-get download --print-uris
// confirms.
func TestKernelFallbackResolves(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		testenv.Skipf(t, "no apt-get: %v", err)
	}
	for _, pinned := range []KernelSpec{DefaultKernel, NewestKernel} {
		t.Run(pinned.Release, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var log bytes.Buffer
			opts, err := privateAPT(ctx, pinned.Suite, t.TempDir(), &log)
			if err != nil {
				testenv.Skipf(t, "the Debian archive cannot be reached: %v", err)
			}
			spec := pinned
			spec.Version = "6.12.0-0~nonexistent"
			fb, err := pinnedOrFallback(ctx, spec, opts, &log)
			if err != nil {
				t.Fatalf("fallback: %v\n%s", err, log.String())
			}
			t.Logf("%s", log.String())
			if fb.pinned != spec.Package+"="+spec.Version {
				t.Errorf("pinned = %q", fb.pinned)
			}
			if !regexp.MustCompile("^(" + pinned.Series + ")$").MatchString(fb.Release) {
				t.Errorf("release %q is not of the series %s", fb.Release, pinned.Series)
			}
			if exec.Command("dpkg", "--compare-versions", fb.Version, "ge", pinned.Version).Run() != nil {
				t.Errorf("fallback %s is older than the pinned %s", fb.Version, pinned.Version)
			}
			if !strings.Contains(log.String(), "is no longer in the archive") {
				t.Errorf("log does not say it falls back:\n%s", log.String())
			}
			if len(fb.Parts) != len(pinned.Parts) {
				t.Fatalf("parts %+v, want as many as %+v", fb.Parts, pinned.Parts)
			}
			for _, d := range fb.debs() {
				checkPrintURIs(t, ctx, opts, d, fb.Release)
			}
		})
	}
}

// checkPrintURIs checks with apt-get download --print-uris that the
// archive offers d with d's checksum, and that its name has release.
func checkPrintURIs(t *testing.T, ctx context.Context, opts []string, d Deb, release string) {
	t.Helper()
	if !strings.HasSuffix(d.Package, release) || len(d.SHA256) != 64 {
		t.Errorf("deb %+v, release %s", d, release)
	}
	args := append(append([]string{}, opts...), "download", "--print-uris", "-q", "-o", "APT::Sandbox::User=root", d.Package+"="+d.Version)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get download --print-uris %s: %v: %s", d.Package, err, out)
	}
	if !strings.Contains(string(out), "SHA256:"+d.SHA256) {
		t.Errorf("apt-get download --print-uris %s=%s: %s, want sha256 %s", d.Package, d.Version, out, d.SHA256)
	}
}

// TestKernelFallbackFetch fetches, for real, the kernel that replaces a
// pinned 6.1 version the archive does not have (about 70 MB), then finds
// it in the cache. Only with NKSCRIPT_TEST_KERNEL_FETCH=1.
func TestKernelFallbackFetch(t *testing.T) {
	if os.Getenv("NKSCRIPT_TEST_KERNEL_FETCH") != "1" {
		testenv.SkipBecause(t, testenv.KernelFetch, "NKSCRIPT_TEST_KERNEL_FETCH is not 1")
	}
	t.Setenv("NKSCRIPT_CACHE", t.TempDir())
	spec := LegacyKernel
	spec.Version = "6.1.0-0~nonexistent"
	var log bytes.Buffer
	start := time.Now()
	ki, err := EnsureKernelSpec(context.Background(), spec, &log)
	t.Logf("%s(%v)", log.String(), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile("^("+spec.Series+")$").MatchString(ki.Version) || ki.Modules == "" || ki.Config == "" {
		t.Errorf("fallback kernel %+v", ki)
	}
	if !strings.Contains(log.String(), "pinned "+spec.Package+"="+spec.Version+" is no longer in the archive; using ") {
		t.Errorf("the fetch does not say it fell back")
	}
	st, err := readStamp(filepath.Dir(ki.Path))
	if err != nil || st.Pinned != spec.Package+"="+spec.Version || len(st.SHA256) != 64 {
		t.Errorf("stamp %+v, %v", st, err)
	}
	again, err := EnsureKernelSpec(context.Background(), spec, failWriter{t})
	if err != nil || again.Path != ki.Path {
		t.Errorf("second lookup: %+v, %v; want %s from the cache", again, err, ki.Path)
	}
}

type failWriter struct{ t *testing.T }

func (w failWriter) Write(p []byte) (int, error) {
	w.t.Errorf("unexpected output: %s", p)
	return len(p), nil
}

// TestCachedFallback checks that a kernel fetched in place of a pinned one
// is found by the pinned spec, and only by it.
func TestCachedFallback(t *testing.T) {
	kdir := t.TempDir()
	spec := DefaultKernel
	spec.Version = "6.12.0-0~nonexistent"
	fakeKernelDir(t, filepath.Join(kdir, "6.12.99+deb12-amd64"), "6.12.99+deb12-amd64", kernelStamp{
		Package: "linux-image-6.12.99+deb12-amd64", Version: "6.12.99-1~bpo12+1", SHA256: strings.Repeat("a", 64),
		Layout: cacheLayout, Pinned: spec.Package + "=" + spec.Version,
	})
	ki, ok := cachedSpec(kdir, spec)
	if !ok || ki.Version != "6.12.99+deb12-amd64" {
		t.Errorf("cachedSpec = %+v, %v", ki, ok)
	}
	if _, ok := cachedSpec(kdir, DefaultKernel); ok {
		t.Errorf("the fallback for %s is taken for %s", spec.Version, DefaultKernel.Version)
	}
}

// fakeKernelDir writes a kernel cache directory whose vmlinuz is a bzImage
// header carrying release.
func fakeKernelDir(t *testing.T, dir, release string, st kernelStamp) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x100)
	copy(img[0x300:], release+" (fake)\x00")
	b, _ := json.Marshal(st)
	for name, data := range map[string][]byte{"vmlinuz": img, stampFile: b, "config": []byte("CONFIG_NETKIT=y\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckFeatures checks the config options each feature takes.
func TestCheckFeatures(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	all := "CONFIG_NETKIT=y\nCONFIG_NET_XGRESS=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_9P_FS=m\n" +
		"CONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_CONSOLE=y\nCONFIG_OVERLAY_FS=m\n"
	os.WriteFile(config, []byte(all), 0o644)
	if err := DefaultKernel.checkFeatures(config); err != nil {
		t.Errorf("complete config: %v", err)
	}
	os.WriteFile(config, []byte(strings.Replace(all, "CONFIG_NETKIT=y", "# CONFIG_NETKIT is not set", 1)), 0o644)
	if err := DefaultKernel.checkFeatures(config); err == nil || !strings.Contains(err.Error(), "netkit (CONFIG_NETKIT=y)") {
		t.Errorf("config without netkit: %v", err)
	}
	if err := LegacyKernel.checkFeatures(config); err != nil {
		t.Errorf("6.1 needs no netkit: %v", err)
	}
	if got := DefaultKernel.featureList(); got != "netkit, tcx, BTF, 9p, virtio and overlayfs" {
		t.Errorf("featureList = %q", got)
	}
}

// TestPinnedKernelsHaveTheirFeatures checks the cached pinned kernels'
// configs against their Features, when they are cached.
func TestPinnedKernelsHaveTheirFeatures(t *testing.T) {
	kdir, err := kernelsDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range PinnedKernels {
		config := filepath.Join(kdir, k.Release, "config")
		if _, err := os.Stat(config); err != nil {
			continue
		}
		if err := k.checkFeatures(config); err != nil {
			t.Error(err)
		}
	}
}
