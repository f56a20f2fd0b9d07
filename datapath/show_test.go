package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// showLab builds, in a namespace of its own, a veth pair whose ends are
// both there (one a bridge port), a pair to the lab's host, addresses in
// both families, a route in a table of its own, a rule, and two programs
// on one tcx hook.
func showLab(t *testing.T) (*Lab, *Netns) {
	t.Helper()
	lab, _ := testLab(t)
	ns, err := lab.Netns(uniqueName("nkshow"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "sv0", Peer: "sv1", PrimaryNs: ns, MTU: 1400})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(err)
	h, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "sh0", Peer: "sh1", PeerNs: ns})
	must(err)
	for _, a := range []struct {
		k *Link
		p string
	}{{p.Primary, "10.93.0.1/24"}, {p.Primary, "fd93::1/64"}, {h.Primary, "10.94.0.1/24"}, {h.Peer, "10.94.0.2/24"}} {
		must(lab.AddAddr(a.k, netip.MustParsePrefix(a.p)))
	}
	for _, k := range []*Link{p.Primary, p.Peer, h.Primary, h.Peer} {
		must(lab.SetUp(k, true))
	}
	_, err = lab.NewBridge(ns, "sbr", []*Link{p.Peer}, 0)
	must(err)
	must(lab.AddRoute(ns, RouteSpec{Dst: netip.MustParsePrefix("10.95.0.0/16"), Via: netip.MustParseAddr("10.93.0.2")}))
	must(lab.AddRoute(ns, RouteSpec{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.94.0.1"), Table: 77}))
	must(lab.AddRule(ns, RuleSpec{Src: netip.MustParsePrefix("10.93.0.0/24"), Table: 77, Priority: 900}))
	for _, port := range []int64{1, 2} {
		prog, err := lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": port}})
		must(err)
		_, err = lab.Attach(prog, p.Primary, HookIngress, AttachOptions{})
		must(err)
	}
	return lab, ns
}

// TestLabShow checks Lab.Show against what ip and bpftool say of the same
// namespace.
func TestLabShow(t *testing.T) {
	lab, ns := showLab(t)
	s, err := lab.Show(ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Namespaces) != 1 || s.Assumed {
		t.Fatalf("snapshot %+v, want one namespace read from the kernel", s)
	}
	st := s.Namespaces[0]
	checkShowLinks(t, ns, st)
	checkShowRoutes(t, ns, st)
	checkShowHooks(t, lab, ns, st)
	var rules []string
	for _, r := range st.Rules {
		rules = append(rules, r.String())
	}
	if want := []string{"900: from 10.93.0.0/24 lookup 77"}; !slices.Equal(rules, want) {
		t.Errorf("rules %q, want %q", rules, want)
	}
	// The whole lab: the host's links of the lab first, then the namespace.
	all, err := lab.Show(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Namespaces) != 2 || !all.Namespaces[0].Host || len(all.Namespaces[0].Links) != 1 || all.Namespaces[0].Links[0].Name != "sh0" {
		t.Errorf("Show(nil): %+v, want the host with sh0 alone, then %s", all.Namespaces, ns.name)
	}
	if peer := all.Namespaces[0].Links[0].Peer; peer != ns.name+"/sh1" {
		t.Errorf("sh0's peer %q, want %s/sh1", peer, ns.name)
	}
}

func checkShowLinks(t *testing.T, ns *Netns, st NsState) {
	t.Helper()
	links := ipJSON(t, ns, "link", "show")
	var want, got []string
	for _, l := range links {
		kind := "device"
		if info, ok := l["linkinfo"].(map[string]any); ok {
			kind = fmt.Sprint(info["info_kind"])
		} else if l["link_type"] == "loopback" {
			kind = "loopback"
		}
		flags := fmt.Sprint(l["flags"])
		master, _ := l["master"].(string)
		want = append(want, fmt.Sprintf("%s %s up=%v mtu=%v master=%s", l["ifname"], kind, strings.Contains(flags, "UP"), l["mtu"], master))
	}
	for _, l := range st.Links {
		got = append(got, fmt.Sprintf("%s %s up=%v mtu=%d master=%s", l.Name, l.Kind, l.Up, l.MTU, l.Master))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("links:\n%s\nip -d link says:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	peers := map[string]string{}
	for _, l := range st.Links {
		peers[l.Name] = l.Peer
	}
	if peers["sv0"] != "sv1" || peers["sv1"] != "sv0" || peers["sh1"] != "host/sh0" {
		t.Errorf("peers %v, want sv0<->sv1 and sh1 -> host/sh0", peers)
	}
	for _, l := range st.Links {
		if l.Name == "sv0" && (len(l.Addrs) != 2 || l.Addrs[0].String() != "10.93.0.1/24" || l.Addrs[1].String() != "fd93::1/64") {
			t.Errorf("sv0 addresses %v, want 10.93.0.1/24 fd93::1/64 (no link-local one)", l.Addrs)
		}
	}
}

func checkShowRoutes(t *testing.T, ns *Netns, st NsState) {
	t.Helper()
	var want, got []string
	for _, fam := range []string{"-4", "-6"} {
		for _, r := range ipJSON(t, ns, fam, "route", "show", "table", "all") {
			dst := fmt.Sprint(r["dst"])
			table, _ := r["table"].(string)
			if table == "local" || r["type"] != nil && r["type"] != "unicast" || strings.HasPrefix(dst, "fe80:") || strings.HasPrefix(dst, "ff00:") {
				continue
			}
			if table == "" || table == "main" {
				table = "0"
			}
			want = append(want, fmt.Sprintf("%s dev %v table %s", dst, r["dev"], table))
		}
	}
	for _, r := range st.Routes {
		dst := "default"
		if r.Dst.IsValid() {
			dst = r.Dst.String()
		}
		got = append(got, fmt.Sprintf("%s dev %s table %d", dst, r.Dev, r.Table))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n%s\nip route says:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func checkShowHooks(t *testing.T, lab *Lab, ns *Netns, st NsState) {
	t.Helper()
	var want, got []string
	for _, l := range st.Links {
		for _, p := range bpftoolNet(t, ns, l.Name) {
			hook := strings.TrimPrefix(strings.TrimPrefix(p.Kind, "tcx/"), "netkit/")
			want = append(want, fmt.Sprintf("%s %s %s prog %d", p.Devname, hook, p.Name, p.ProgID))
		}
		for _, h := range l.Hooks {
			for _, p := range h.Progs {
				got = append(got, fmt.Sprintf("%s %s %s prog %d", l.Name, h.Hook, p.Name, p.ID))
			}
		}
	}
	if len(got) != 2 || !slices.Equal(got, want) {
		t.Errorf("programs, in order:\n%s\nbpftool net show says:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var links, ids []uint32
	for _, a := range lab.Attachments() {
		links = append(links, a.ID())
	}
	for _, l := range st.Links {
		for _, h := range l.Hooks {
			for _, p := range h.Progs {
				ids = append(ids, p.LinkID)
			}
		}
	}
	if !slices.Equal(ids, links) {
		t.Errorf("BPF link IDs %v, the lab's attachments have %v", ids, links)
	}
}

// TestNetkitShow checks what Lab.Show says of a netkit pair: mode,
// policies, which end is the primary, the peer across namespaces, and
// the programs on the primary's netkit hooks, against ip and bpftool.
func TestNetkitShow(t *testing.T) {
	l := newNetkitLab(t, nkSetup{Mode: "l2", PeerPolicy: "blackhole"})
	prog, err := l.lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.lab.Attach(prog, l.prim, HookPeer, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := l.lab.Show(nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]LinkState{}
	for _, ns := range s.Namespaces {
		for _, k := range ns.Links {
			byName[ns.Name+"/"+k.Name] = k
		}
	}
	prim, peer := byName["host/nk-prim"], byName[l.peerNs.name+"/nk-peer"]
	if prim.Kind != "netkit" || prim.Mode != "l2" || !prim.Primary || prim.Policy != "forward" || prim.PeerPolicy != "blackhole" || prim.Peer != l.peerNs.name+"/nk-peer" {
		t.Errorf("primary: %+v", prim)
	}
	if peer.Kind != "netkit" || peer.Primary || peer.Policy != "blackhole" || peer.PeerPolicy != "forward" || peer.Peer != "host/nk-prim" {
		t.Errorf("peer: %+v", peer)
	}
	if len(prim.Hooks) != 1 || prim.Hooks[0].Hook != HookPeer || len(prim.Hooks[0].Progs) != 1 || prim.Hooks[0].Progs[0].Name != "drop_port" {
		t.Errorf("primary's hooks %+v, want drop_port on peer", prim.Hooks)
	}
	_, info := ipInfoData(t, ipLink(t, l.host, "nk-prim"))
	if info["mode"] != "l2" || info["policy"] != "forward" || info["peer_policy"] != "blackhole" {
		t.Errorf("ip -d link says %v", info)
	}
	bp := bpftoolNet(t, l.host, "nk-prim")
	if len(bp) != 1 || bp[0].Kind != "netkit/peer" || bp[0].ProgID != prim.Hooks[0].Progs[0].ID {
		t.Errorf("bpftool net show says %+v, show says %+v", bp, prim.Hooks)
	}
}
