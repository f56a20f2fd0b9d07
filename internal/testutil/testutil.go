// Package testutil holds the test helpers nkscript's packages share: labs
// on the kernel, in a namespace of the test's own, and labs on the
// recording backend, which changes nothing and needs no privileges, for
// tests of argument handling, values, docs and errors.
package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testenv"
)

// RequireRoot skips t, saying why, unless the test runs as root; under
// CI it fails t instead.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: %s", why)
	}
}

// Netns returns an anonymous namespace that lives until t ends.
func Netns(t testing.TB) *datapath.Netns {
	t.Helper()
	RequireRoot(t, "creates a network namespace")
	ns, err := datapath.NewAnonNetns()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// KernelLab returns a lab on the kernel whose host is a fresh anonymous
// namespace and whose journal is the test's own. When t ends the lab is
// closed, and t fails if closing it fails or leaves a link in its host.
func KernelLab(t testing.TB) (*datapath.Lab, *datapath.Netns) {
	t.Helper()
	host := Netns(t)
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: t.TempDir(), Script: t.Name(), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if links, err := host.Handle().LinkList(); err == nil && len(links) != 1 {
			var names []string
			for _, l := range links {
				names = append(names, l.Attrs().Name)
			}
			t.Errorf("links left in the lab's host namespace: %s", strings.Join(names, ", "))
		}
	})
	return lab, host
}

// RecordedLab returns a lab on the recording backend: every operation is
// checked as on the kernel and changes nothing. It needs no privileges.
func RecordedLab(t testing.TB) *datapath.Lab {
	t.Helper()
	lab, err := datapath.NewLab(datapath.LabConfig{Backend: datapath.NewRecorder(), Script: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return lab
}

// WriteFiles writes files (relative path to content) under dir, making the
// directories they need.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
