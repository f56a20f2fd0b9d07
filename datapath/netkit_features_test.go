package datapath

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/kernelcheck"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// TestNetkitKnobs creates netkit pairs with every optional knob and checks
// the devices with `ip -d -j link`; a knob the running kernel lacks must
// fail with "needs Linux ≥ X.Y (running A.B)", never a raw errno.
func TestNetkitKnobs(t *testing.T) {
	requireNetkit(t)
	lab, host := testLab(t)
	peerNs, err := lab.Netns(uniqueName("nkk"))
	if err != nil {
		t.Fatal(err)
	}
	base := PairOptions{Kind: Netkit, PrimaryNs: host, PeerNs: peerNs, Mode: "l2", Policy: "forward", PeerPolicy: "blackhole"}

	o := base
	o.Primary, o.Peer, o.MTU, o.PeerMTU = "nkk0", "nkk1", 1500, 1400
	if _, err := lab.NewPair(o); err != nil {
		t.Fatal(err)
	}
	l0, l1 := ipLink(t, host, "nkk0"), ipLink(t, peerNs, "nkk1")
	kind, data := ipInfoData(t, l0)
	if kind != "netkit" || data["mode"] != "l2" || data["policy"] != "forward" || data["peer_policy"] != "blackhole" {
		t.Errorf("ip -d -j link: kind %q, info_data %v", kind, data)
	}
	if l0["mtu"] != float64(1500) || l1["mtu"] != float64(1400) {
		t.Errorf("mtu %v / peer mtu %v, want 1500 / 1400", l0["mtu"], l1["mtu"])
	}

	o = base
	o.Primary, o.Peer, o.Scrub, o.PeerScrub = "nkk2", "nkk3", "none", "default"
	_, err = lab.NewPair(o)
	if !testenv.NetkitKnob(t, "scrub", "none", "scrub", "none", "peer", "scrub", "default") {
		want := fmt.Sprintf("netkit scrub= needs Linux ≥ 6.13 (running %s)", KernelRelease())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("scrub on a kernel without it: %v, want %q", err, want)
		}
		t.Logf("kernel %s has no netkit scrub: %v", KernelRelease(), err)
	} else {
		if err != nil {
			t.Fatal(err)
		}
		_, data := ipInfoData(t, ipLink(t, host, "nkk2"))
		if data["scrub"] != "none" || data["peer_scrub"] != "default" {
			t.Errorf("scrub: info_data %v", data)
		}
	}

	for i, q := range [][2]int{{4, 2}, {1, 2}} {
		o = base
		o.Primary, o.Peer = fmt.Sprintf("nkq%d", 2*i), fmt.Sprintf("nkq%d", 2*i+1)
		o.TxQueues, o.RxQueues = q[0], q[1]
		checkQueues(t, lab, host, o)
	}

	o = base
	o.Primary, o.Peer, o.Scrub = "nkk6", "nkk7", "sometimes"
	if _, err := lab.NewPair(o); err == nil || !strings.Contains(err.Error(), `scrub "sometimes" is not a netkit scrub mode; use "default" or "none"`) {
		t.Errorf("bad scrub: %v", err)
	}
}

// TestNetkitDryRunCommand runs the ip command --dry-run writes for a
// netkit pair with knobs, checking that iproute2 takes its syntax.
func TestNetkitDryRunCommand(t *testing.T) {
	requireNetkit(t)
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skipf(t, "needs ip")
	}
	var out strings.Builder
	dry, err := NewLab(LabConfig{Backend: NewShell(&out, "")})
	if err != nil {
		t.Fatal(err)
	}
	defer dry.Close()
	ns := testNetns(t)
	o := PairOptions{Kind: Netkit, Primary: "nkd0", Peer: "nkd1", Mode: "l3", Policy: "blackhole", PeerPolicy: "forward", MTU: 1500, PeerMTU: 1400}
	if testenv.NetkitKnob(t, "scrub", "none", "scrub", "none", "peer", "scrub", "default") {
		o.Scrub, o.PeerScrub = "none", "default"
	}
	if _, err := dry.NewPair(o); err != nil {
		t.Fatal(err)
	}
	var cmd string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "ip link add nkd0") {
			cmd = l
		}
	}
	if cmd == "" {
		t.Fatalf("no ip link add in:\n%s", out.String())
	}
	t.Log(cmd)
	c := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), ns.Fd()), "sh", "-c", cmd)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	l0, l1 := ipLink(t, ns, "nkd0"), ipLink(t, ns, "nkd1")
	_, data := ipInfoData(t, l0)
	if data["mode"] != "l3" || data["policy"] != "blackhole" || data["peer_policy"] != "forward" || l1["mtu"] != float64(1400) {
		t.Errorf("the dry run's command built %v, peer mtu %v", data, l1["mtu"])
	}
}

// TestNetkitCreateRequest checks the RTM_NEWLINK request nkscript builds
// itself (for headroom and tailroom) against the kernel, with the
// attributes every netkit kernel knows. It runs in the microVM.
func TestNetkitCreateRequest(t *testing.T) {
	requireNetkit(t)
	a, b := testNetns(t), testNetns(t)
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nkr0", MTU: 1450, NumTxQueues: 2, NumRxQueues: 2}, Mode: netlink.NETKIT_MODE_L2,
		Policy: netlink.NETKIT_POLICY_FORWARD, PeerPolicy: netlink.NETKIT_POLICY_BLACKHOLE,
		Scrub: netlink.NETKIT_SCRUB_DEFAULT, PeerScrub: netlink.NETKIT_SCRUB_DEFAULT}
	if err := createNetkit(a, nk, netlink.LinkAttrs{Name: "nkr1", MTU: 1350}, b, 0, 0); err != nil {
		t.Fatal(err)
	}
	prim, peer := ipLink(t, a, "nkr0"), ipLink(t, b, "nkr1")
	_, info := ipInfoData(t, prim)
	if info["mode"] != "l2" || info["peer_policy"] != "blackhole" || info["policy"] != "forward" {
		t.Errorf("nkr0 info_data %v", info)
	}
	if prim["mtu"] != float64(1450) || peer["mtu"] != float64(1350) {
		t.Errorf("mtu %v/%v, want 1450/1350", prim["mtu"], peer["mtu"])
	}
	if testenv.NetkitAtLeast(t, 6, 7) && (prim["num_tx_queues"] != float64(2) || peer["num_rx_queues"] != float64(2)) {
		t.Errorf("queues %v/%v, want 2", prim["num_tx_queues"], peer["num_rx_queues"])
	}
	data, err := netkitInfoData(a, "nkr0")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := data[nl.IFLA_NETKIT_MODE]; !ok || len(m) != 4 || m[0] != byte(netlink.NETKIT_MODE_L2) {
		t.Errorf("netkitInfoData mode %v (all %v)", m, data)
	}
}

// TestNetkitRoom sets headroom and tailroom where the kernel has them,
// and checks the error that names the kernel needed where it does not
// (the microVM's 6.12).
func TestNetkitRoom(t *testing.T) {
	requireNetkit(t)
	lab, host := testLab(t)
	_, err := lab.NewPair(PairOptions{Kind: Netkit, Primary: "nkh0", Peer: "nkh1", PrimaryNs: host, Mode: "l3", Policy: "forward", PeerPolicy: "forward", Headroom: 64, Tailroom: 32})
	// iproute2 6.15 knows neither the knobs nor their attributes: the
	// kernel's version decides, and kernelcheck's own netlink decoder
	// reads the device back.
	if !testenv.NetkitAtLeast(t, 6, 14) {
		want := "netkit headroom=/tailroom= needs Linux ≥ 6.14 (running " + KernelRelease() + ")"
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), want) {
			t.Fatalf("headroom on %s: %v, want %q", KernelRelease(), err, want)
		}
		t.Logf("refused as expected: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var head, tail uint16
	var ok bool
	if err := host.Do(func() (err error) { head, tail, ok, err = kernelcheck.NetkitRoom("nkh0"); return err }); err != nil {
		t.Fatal(err)
	}
	if !ok || head != 64 || tail != 32 {
		t.Errorf("kernel reports headroom %d tailroom %d (present %v), want 64 and 32", head, tail, ok)
	}
}

// checkQueues makes the pair o asks for, with queues, and checks it
// against what `ip link add ... numtxqueues` says of the kernel: more
// than one queue each way since 6.7, and later kernels (7.3) refuse more
// than one transmit queue.
func checkQueues(t *testing.T, lab *Lab, host *Netns, o PairOptions) {
	t.Helper()
	_, err := lab.NewPair(o)
	switch {
	case kernelcheck.NetkitQueues(o.TxQueues, o.RxQueues):
		if err != nil {
			t.Fatalf("queues tx %d rx %d: %v", o.TxQueues, o.RxQueues, err)
		}
		l := ipLink(t, host, o.Primary)
		if l["num_tx_queues"] != float64(o.TxQueues) || l["num_rx_queues"] != float64(o.RxQueues) {
			t.Errorf("queues: tx %v rx %v, want %d and %d", l["num_tx_queues"], l["num_rx_queues"], o.TxQueues, o.RxQueues)
		}
	case testenv.NetkitAtLeast(t, 6, 7):
		if err == nil || !strings.Contains(err.Error(), "netkit num_tx_queues: the running kernel "+KernelRelease()+" refuses it") {
			t.Errorf("tx queues on a kernel that refuses them: %v", err)
		}
	default:
		if err == nil || !strings.Contains(err.Error(), "needs Linux ≥ 6.7") {
			t.Errorf("queues on a kernel without them: %v", err)
		}
	}
}
