package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
)

// dryLabScript builds a little of everything --dry-run translates: a
// namespace, a veth pair into it, addresses (IPv4 and IPv6), a route, a
// sysctl, bundled programs with constants on tcx ingress and egress, and a
// map entry.
const dryLabScript = `
ns = netns(argv[1])
p = veth_pair(argv[2], "eth0", peer_ns = ns)
p.primary.addr("10.99.0.1/24").addr("fd99::1/64").up()
p.peer.addr("10.99.0.2/24").addr("fd99::2/64").up()
route("10.98.0.0/24", via = "10.99.0.1", ns = ns)
sysctl("net.ipv4.conf.all.forwarding", 1, ns = ns)
attach(program("drop_port", port = 4242), p.primary, "ingress")
fw = program("drop_flow", src = "10.99.0.2", src_len = 32, proto = 6)
attach(fw, p.peer, "egress")
m = program("mirror")
m.maps["monitor"][0] = 7
attach(m, p.peer, "ingress")
ns.lo.addr("192.168.100.5/32")
print("built")
`

// labShape describes what a lab looks like to ip and bpftool, without
// ifindexes: each link's kind, state and addresses, routes, sysctls, and
// the programs on each tcx hook, in the test's host namespace and in ns.
func labShape(t *testing.T, hostNs, ns string) []string {
	t.Helper()
	var s []string
	for _, n := range []string{hostNs, ns} {
		label := "ns"
		if n == hostNs {
			label = "host"
		}
		out, err := exec.Command("ip", "-n", n, "-d", "-j", "addr", "show").Output()
		if err != nil {
			t.Fatalf("ip -n %s addr: %v", n, err)
		}
		var links []struct {
			Name     string   `json:"ifname"`
			Flags    []string `json:"flags"`
			MTU      int      `json:"mtu"`
			LinkInfo struct {
				Kind string `json:"info_kind"`
			} `json:"linkinfo"`
			Addrs []struct {
				Local  string `json:"local"`
				Prefix int    `json:"prefixlen"`
				Scope  string `json:"scope"`
			} `json:"addr_info"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			t.Fatal(err)
		}
		for _, k := range links {
			var addrs []string
			for _, a := range k.Addrs {
				if a.Scope != "link" {
					addrs = append(addrs, fmt.Sprintf("%s/%d", a.Local, a.Prefix))
				}
			}
			slices.Sort(addrs)
			s = append(s, fmt.Sprintf("%s link %s kind=%s up=%v mtu=%d addrs=%v", label, k.Name, k.LinkInfo.Kind, slices.Contains(k.Flags, "UP"), k.MTU, addrs))
		}
		out, err = exec.Command("ip", "-n", n, "route", "show").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			s = append(s, label+" route "+l)
		}
		out, err = exec.Command("nsenter", "--net=/run/netns/"+n, "sysctl", "-n", "net.ipv4.conf.all.forwarding").Output()
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, label+" forwarding="+strings.TrimSpace(string(out)))
		out, err = exec.Command("nsenter", "--net=/run/netns/"+n, "bpftool", "net", "show", "-j").Output()
		if err != nil {
			t.Fatal(err)
		}
		var nets []struct {
			TC []struct {
				Dev  string `json:"devname"`
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"tc"`
		}
		if err := json.Unmarshal(out, &nets); err != nil {
			t.Fatal(err)
		}
		for _, n := range nets {
			for _, p := range n.TC {
				s = append(s, fmt.Sprintf("%s bpf %s %s %s", label, p.Dev, p.Kind, p.Name))
			}
		}
	}
	slices.Sort(s)
	return s
}

// TestDryRunReplay checks that --dry-run changes nothing, and that bash
// running its output builds the lab a real run builds: the same links,
// addresses, routes, sysctls and programs on the same hooks.
func TestDryRunReplay(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	for _, tool := range []string{"bpftool", "nsenter", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "needs %s", tool)
		}
	}
	script := filepath.Join(t.TempDir(), "lab.star")
	if err := os.WriteFile(script, []byte(dryLabScript), 0o644); err != nil {
		t.Fatal(err)
	}
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	bpffsMounted := exec.Command("mountpoint", "-q", "/sys/fs/bpf").Run() == nil
	pinsAtStart := dryPins(t, nil)
	before := machineState(t, hostNs, journals)

	// 1. The dry run: shell commands on stdout, nothing changed.
	cmd, stdout, stderr := runIn(t, hostNs, journals, nil, "--dry-run", script, labNs, "dry0")
	if err := cmd.Run(); err != nil {
		t.Fatalf("--dry-run: %v\n%s", err, stderr)
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Fatalf("--dry-run changed the machine:\n%s", d)
	}
	shellScript := stdout.String()
	for _, want := range []string{"ip netns add " + labNs, "ip link add dry0 type veth peer name eth0 netns " + labNs, "bpftool net attach tcx_ingress", "# built"} {
		if !strings.Contains(shellScript, want) {
			t.Errorf("the dry-run output lacks %q:\n%s", want, shellScript)
		}
	}

	// 2. A real run, kept up, for reference.
	cmd, _, stderr = runIn(t, hostNs, journals, nil, "--keep", script, labNs, "dry0")
	if err := cmd.Run(); err != nil {
		t.Fatalf("real run: %v\n%s", err, stderr)
	}
	real := labShape(t, hostNs, labNs)
	if out, err := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}

	// 3. bash builds it from the dry run's output.
	sh := filepath.Join(t.TempDir(), "lab.sh")
	if err := os.WriteFile(sh, []byte(shellScript), 0o644); err != nil {
		t.Fatal(err)
	}
	replay := exec.Command("nsenter", "--net=/run/netns/"+hostNs, "bash", sh)
	replay.Env = append(os.Environ(), "NKSCRIPT_KEEP=1")
	out, err := replay.CombinedOutput()
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", labNs).Run()
		pins, _ := filepath.Glob("/sys/fs/bpf/nkscript-dry-*")
		for _, p := range pins {
			os.RemoveAll(p)
		}
		if !bpffsMounted {
			exec.Command("umount", "/sys/fs/bpf").Run()
		}
	})
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	replayed := labShape(t, hostNs, labNs)
	if !slices.Equal(real, replayed) {
		t.Errorf("bash built another lab than nkscript:\nnkscript:\n  %s\nbash:\n  %s", strings.Join(real, "\n  "), strings.Join(replayed, "\n  "))
	}
	t.Logf("lab:\n  %s", strings.Join(real, "\n  "))

	// 4. Without NKSCRIPT_KEEP, the script undoes what it built when it
	// exits: the machine is as before the dry run. First remove what the
	// kept replay made: its namespace, its pins, bpffs if it mounted it.
	if out, err := exec.Command("ip", "netns", "del", labNs).CombinedOutput(); err != nil {
		t.Fatalf("remove the replayed lab: %v\n%s", err, out)
	}
	for _, p := range dryPins(t, pinsAtStart) {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	if !bpffsMounted {
		exec.Command("umount", "/sys/fs/bpf").Run()
	}
	pinsBefore := dryPins(t, nil)
	mountedBefore := exec.Command("mountpoint", "-q", "/sys/fs/bpf").Run() == nil
	undo := exec.Command("nsenter", "--net=/run/netns/"+hostNs, "bash", sh)
	undo.Env = withoutEnv(os.Environ(), "NKSCRIPT_KEEP")
	if out, err := undo.CombinedOutput(); err != nil {
		t.Fatalf("bash without NKSCRIPT_KEEP: %v\n%s", err, out)
	}
	if _, err := os.Stat("/run/netns/" + labNs); err == nil {
		t.Errorf("bash without NKSCRIPT_KEEP left namespace %s", labNs)
	}
	if left := dryPins(t, pinsBefore); len(left) > 0 {
		t.Errorf("bash without NKSCRIPT_KEEP left BPF pins %v", left)
	}
	if !mountedBefore && exec.Command("mountpoint", "-q", "/sys/fs/bpf").Run() == nil {
		t.Errorf("bash without NKSCRIPT_KEEP left /sys/fs/bpf mounted")
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Errorf("bash without NKSCRIPT_KEEP left the machine changed:\n%s", d)
	}
}

// dryPins lists the dry-run shell's pin directories
// (/sys/fs/bpf/nkscript-dry-PID) other than those in keep, which are
// another run's.
func dryPins(t *testing.T, keep []string) []string {
	t.Helper()
	pins, err := filepath.Glob("/sys/fs/bpf/nkscript-dry-*")
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(pins, func(p string) bool { return slices.Contains(keep, p) })
}

// withoutEnv returns env without the variable key.
func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}
