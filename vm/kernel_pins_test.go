package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPinnedKernel checks the names --kernel takes for the pinned kernels.
func TestPinnedKernel(t *testing.T) {
	for name, want := range map[string]string{
		"6.1": LegacyKernel.Release, "6.12": DefaultKernel.Release, "7.3": NewestKernel.Release,
		NewestKernel.Release: NewestKernel.Release, "7": NewestKernel.Release, "6.13": "", "6": "",
	} {
		k, ok := PinnedKernel(name)
		if ok != (want != "") || k.Release != want {
			t.Errorf("PinnedKernel(%q) = %q, %v; want %q", name, k.Release, ok, want)
		}
	}
	for _, k := range PinnedKernels {
		if k.Suite == "" || len(k.SHA256) != 64 {
			t.Errorf("%s: suite %q, sha256 %q", k.Release, k.Suite, k.SHA256)
		}
		for _, d := range k.Parts {
			if len(d.SHA256) != 64 || d.Version == "" {
				t.Errorf("%s: part %+v", k.Release, d)
			}
		}
	}
}

// TestRenameFirst checks that a kernel's files are found where bookworm
// packages put them (boot/) and where trixie's do (usr/lib/modules/).
func TestRenameFirst(t *testing.T) {
	x := t.TempDir()
	mod := filepath.Join(x, "usr/lib/modules/7.3.4+deb13-amd64")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "vmlinuz"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "vmlinuz")
	if err := renameFirst(x, []string{"boot/vmlinuz-7.3.4+deb13-amd64", filepath.Join(mod, "vmlinuz")}, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "k" {
		t.Errorf("moved file: %q, %v", b, err)
	}
	if err := renameFirst(x, []string{"boot/none"}, dst); err == nil {
		t.Error("renameFirst found a file that is not there")
	}
}
