package builtins

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNeedsNetkit(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"direct.star":   "p = netkit_pair('a', 'b')\nx = 1\n",
		"veth.star":     "p = veth_pair('a', 'b')\nnetkit = 1\n",
		"lib/nk.star":   "def make():\n    return netkit_pair('a', 'b')\n",
		"loads.star":    "load('lib/nk.star', 'make')\nprint(1)\n",
		"cycle.star":    "load('cycle2.star', 'x')\n",
		"cycle2.star":   "load('cycle.star', 'y')\nx = 1\n",
		"missing.star":  "load('absent.star', 'x')\n",
		"broken.star":   "x = (\n",
		"toplevel.star": "for i in range(2):\n    print(i)\nz = 0\n",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{
		"direct.star": true, "veth.star": false, "loads.star": true, "cycle.star": false,
		"missing.star": false, "toplevel.star": false,
	} {
		got, err := NeedsNetkit(filepath.Join(dir, name))
		if err != nil || got != want {
			t.Errorf("NeedsNetkit(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := NeedsNetkit(filepath.Join(dir, "broken.star")); err == nil {
		t.Error("NeedsNetkit(broken.star): no error")
	}
}
