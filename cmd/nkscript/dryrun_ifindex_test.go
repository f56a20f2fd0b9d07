package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
)

// ifindexLabScript gives two mirror programs a device each as their
// monitor: one in a namespace of the lab, one in the run's own.
const ifindexLabScript = `
ns = netns(argv[1])
p = veth_pair(argv[2], "eth0", peer_ns = ns)
inside = program("mirror")
inside.maps["monitor"][0] = p.peer
outside = program("mirror")
outside.maps["monitor"][0] = p.primary
`

// TestDryRunIfindex checks that a map value holding a device is written
// by --dry-run as a lookup of the device's ifindex when bash runs it, not
// as the stand-in number the dry run gave the device.
func TestDryRunIfindex(t *testing.T) {
	for _, tool := range []string{"bpftool", "nsenter", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "needs %s", tool)
		}
	}
	hostNs := testHostNetns(t)
	labNs := hostNs + "-ifx"
	script := filepath.Join(t.TempDir(), "lab.star")
	if err := os.WriteFile(script, []byte(ifindexLabScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stdout, stderr := runIn(t, hostNs, t.TempDir(), nil, "--dry-run", script, labNs, "ifx0")
	if err := cmd.Run(); err != nil {
		t.Fatalf("--dry-run: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout.String(), "$(nk_ifindex "+labNs+" eth0)") {
		t.Fatalf("the map update does not look the device up:\n%s", stdout)
	}
	sh := filepath.Join(t.TempDir(), "lab.sh")
	if err := os.WriteFile(sh, []byte(stdout.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Kept, to read the maps: the pins are removed below, the lab's
	// namespace with hostNs's.
	bpffsMounted := exec.Command("mountpoint", "-q", "/sys/fs/bpf").Run() == nil
	replay := exec.Command("nsenter", "--net=/run/netns/"+hostNs, "bash", sh)
	replay.Env = append(os.Environ(), "NKSCRIPT_KEEP=1")
	out, err := replay.CombinedOutput()
	var pins []string
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", labNs).Run()
		for _, p := range pins {
			os.RemoveAll(p)
		}
		if !bpffsMounted {
			exec.Command("umount", "/sys/fs/bpf").Run()
		}
	})
	pins, _ = filepath.Glob("/sys/fs/bpf/nkscript-dry-*")
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if len(pins) != 1 {
		t.Fatalf("want one pin directory of the replay, found %v", pins)
	}
	for i, dev := range []struct{ ns, name string }{{labNs, "eth0"}, {hostNs, "ifx0"}} {
		want := ifindexIn(t, dev.ns, dev.name)
		got := monitorValue(t, filepath.Join(pins[0], strconv.Itoa(i+1), "maps", "monitor"))
		if got != want {
			t.Errorf("monitor of program %d holds %d, want %s's ifindex %d", i+1, got, dev.name, want)
		}
	}
}

// ifindexIn is the ifindex of dev in the named namespace, as ip says.
func ifindexIn(t *testing.T, ns, dev string) int {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("ip -n %s link show %s: %v", ns, dev, err)
	}
	var links []struct {
		Index int `json:"ifindex"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", dev, err, out)
	}
	return links[0].Index
}

// monitorValue reads entry 0 of a pinned mirror monitor map.
func monitorValue(t *testing.T, pin string) int {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", pin).Output()
	if err != nil {
		t.Fatalf("bpftool map dump %s: %v", pin, err)
	}
	var entries []struct {
		Formatted struct {
			Key   int `json:"key"`
			Value int `json:"value"`
		} `json:"formatted"`
	}
	if err := json.Unmarshal(out, &entries); err != nil || len(entries) != 1 {
		t.Fatalf("bpftool map dump %s: %v: %s", pin, err, out)
	}
	return entries[0].Formatted.Value
}
