package datapath

import (
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// linkInfo is `ip -j -d link show dev NAME` in ns: the device's kind and
// its kind's data.
func linkInfo(t *testing.T, ns *Netns, name string) (link map[string]any, kind string, data map[string]any) {
	t.Helper()
	links := ipJSON(t, ns, "link", "show", "dev", name)
	if len(links) != 1 {
		t.Fatalf("ip link show dev %s: %v", name, links)
	}
	info, _ := links[0]["linkinfo"].(map[string]any)
	kind, _ = info["info_kind"].(string)
	data, _ = info["info_data"].(map[string]any)
	return links[0], kind, data
}

// TestVxlan creates vxlan devices (with a remote per call, and with one
// from the FDB) in a namespace the lab did not create, checks them with
// ip and bridge, and checks that Close leaves nothing behind.
func TestVxlan(t *testing.T) {
	lab, host := testLab(t)
	a, _ := testVeth(t, host, "dv0", netip.MustParsePrefix("10.62.0.1/24"), host, "dv1", netip.MustParsePrefix("10.62.0.2/24"))
	under := &Link{ns: host, index: a, name: "dv0"}
	vx, err := lab.NewVxlan(host, DeviceSpec{Name: "vx0", VNI: 42, Remote: netip.MustParseAddr("10.62.0.2"), Local: netip.MustParseAddr("10.62.0.1"), Dev: under})
	if err != nil {
		t.Fatal(err)
	}
	if _, kind, data := linkInfo(t, host, "vx0"); kind != "vxlan" || vx.Kind() != "vxlan" || data["id"] != 42.0 || data["remote"] != "10.62.0.2" || data["local"] != "10.62.0.1" || data["link"] != "dv0" || data["port"] != 4789.0 {
		t.Errorf("vx0: kind %q data %v", kind, data)
	}
	vx2, err := lab.NewVxlan(host, DeviceSpec{Name: "vx1", VNI: 43, Port: 8472})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.AddVxlanRemote(vx2, netip.MustParseAddr("10.62.0.9")); err != nil {
		t.Fatal(err)
	}
	if _, _, data := linkInfo(t, host, "vx1"); data["port"] != 8472.0 {
		t.Errorf("vx1: data %v", data)
	}
	fdb := ipJSONCmd(t, host, "bridge", "fdb", "show", "dev", "vx1")
	if len(fdb) != 1 || fdb[0]["mac"] != "00:00:00:00:00:00" || fdb[0]["dst"] != "10.62.0.9" {
		t.Errorf("bridge fdb show dev vx1: %v", fdb)
	}
	if err := lab.AddVxlanRemote(under, netip.MustParseAddr("10.62.0.9")); err == nil {
		t.Error("adding a remote to a veth succeeded")
	}
	if _, err := lab.NewVxlan(host, DeviceSpec{Name: "vx1", VNI: 44}); err == nil {
		t.Error("creating vx1 twice succeeded")
	}
	if got := journalNames(t, lab); !slices.Equal(got, []string{"vx0", "vx1"}) {
		t.Fatalf("journal %v, want vx0 and vx1", got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	got := linkNames(ipJSON(t, host, "link"))
	for _, name := range []string{"vx0", "vx1"} {
		if slices.Contains(got, name) {
			t.Errorf("%s left after Close: %v", name, got)
		}
	}
}

// journalNames are the names of what lab's journal records.
func journalNames(t *testing.T, lab *Lab) []string {
	t.Helper()
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range records {
		names = append(names, r.String())
	}
	return names
}

// TestTun creates a tun device in a namespace the lab did not create and
// checks it with ip; the journal's undo (the one `nkscript cleanup` runs)
// deletes it, matching netlink's kind for it, "tuntap". The microVMs have
// no /dev/net/tun: it runs on the host.
func TestTun(t *testing.T) {
	lab, host := testLab(t)
	tun, err := lab.NewTun(host, "tun0")
	if err != nil {
		t.Fatal(err)
	}
	if _, kind, data := linkInfo(t, host, "tun0"); kind != "tun" || tun.Kind() != "tun" || data["type"] != "tun" || data["pi"] != false {
		t.Errorf("tun0: kind %q, Kind() %q, data %v", kind, tun.Kind(), data)
	}
	if _, err := lab.NewTun(host, "tun0"); err == nil {
		t.Error("creating tun0 twice succeeded")
	}
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1 || records[0].(*LinkRecord).Kind != "tuntap" {
		t.Fatalf("journal %v, want tun0 as a tuntap link", records)
	}
	if err := records[0].undo(newUndoer(host, map[NsID]*Netns{host.id: host}, io.Discard)); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(ipJSON(t, host, "link")); slices.Contains(got, "tun0") {
		t.Errorf("tun0 left after its undo: %v", got)
	}
}

// TestVlan creates a vlan with its default name on a veth in a namespace
// the lab did not create and checks it with ip; on a kernel without
// 802.1Q support it checks that the error says so.
func TestVlan(t *testing.T) {
	lab, host := testLab(t)
	a, _ := testVeth(t, host, "dv0", netip.MustParsePrefix("10.63.0.1/24"), host, "dv1", netip.MustParsePrefix("10.63.0.2/24"))
	under := &Link{ns: host, index: a, name: "dv0"}
	vl, err := lab.NewVlan(under, 100, "")
	if err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "CONFIG_VLAN_8021Q") {
			t.Fatal(err)
		}
		t.Logf("no 802.1Q on this kernel: %v", err)
		return
	}
	if link, kind, data := linkInfo(t, host, "dv0.100"); kind != "vlan" || data["id"] != 100.0 || link["link"] != "dv0" || vl.Name() != "dv0.100" {
		t.Errorf("dv0.100: kind %q data %v link %v", kind, data, link["link"])
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(ipJSON(t, host, "link")); slices.Contains(got, "dv0.100") {
		t.Errorf("dv0.100 left after Close: %v", got)
	}
}

// TestDevicesInOwnNetns creates devices in a namespace the lab created:
// they are not journaled and go with the namespace.
func TestDevicesInOwnNetns(t *testing.T) {
	lab, _ := testLab(t)
	ns, err := lab.Netns(uniqueName("dv"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.NewVxlan(ns, DeviceSpec{Name: "vx0", VNI: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.NewTun(ns, "tun0"); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(ipJSON(t, ns, "link")); !slices.Contains(got, "vx0") || !slices.Contains(got, "tun0") {
		t.Errorf("links in %s: %v", ns.Name(), got)
	}
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if _, ok := r.(*LinkRecord); ok {
			t.Errorf("journaled %v; devices in the lab's namespace go with it", r)
		}
	}
}

// TestDeviceChecks are the arguments every backend refuses.
func TestDeviceChecks(t *testing.T) {
	lab, host := testLab(t)
	for _, d := range []DeviceSpec{
		{Name: "vx0", VNI: 0},
		{Name: "vx0", VNI: 1 << 24},
		{Name: "vx0", VNI: 1, Port: 70000},
		{Name: "vx0", VNI: 1, Remote: netip.MustParseAddr("239.1.1.1")},
		{Name: "vx0", VNI: 1, Remote: netip.MustParseAddr("10.0.0.1"), Local: netip.MustParseAddr("fd00::1")},
		{Name: "a-very-long-name0", VNI: 1},
	} {
		if _, err := lab.NewVxlan(host, d); err == nil {
			t.Errorf("NewVxlan(%+v) succeeded", d)
		}
	}
	lo := &Link{ns: host, index: 1, name: "lo", loop: true}
	if _, err := lab.NewVlan(lo, 5, "lo5"); err == nil {
		t.Error("a vlan on lo succeeded")
	}
	k := &Link{ns: host, index: 1, name: "dv-long-name0"}
	if _, err := lab.NewVlan(k, 4000, ""); err == nil {
		t.Error("a default vlan name over 15 bytes succeeded")
	}
	if _, err := lab.NewVlan(k, 4095, "v"); err == nil {
		t.Error("vlan id 4095 succeeded")
	}
}

// ipJSONCmd runs `CMD -j ARGS` (an iproute2 tool) inside ns and decodes
// its output.
func ipJSONCmd(t *testing.T, ns *Netns, cmdName string, args ...string) []map[string]any {
	t.Helper()
	cmd := exec.Command(cmdName, append([]string{"-j"}, args...)...)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %v: %v: %s", cmdName, args, err, stderr.String())
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
		t.Fatalf("%s %v: %v\n%s", cmdName, args, err, out.String())
	}
	return v
}
