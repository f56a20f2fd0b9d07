package datapath

import (
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
)

// Feature probes for netkit's optional knobs. Each creates a netkit pair
// with the knob set in a throwaway namespace, once per process, and reads
// the device back: the kernel parses netkit's attributes leniently, so an
// attribute it does not know is ignored rather than refused, and only the
// read-back tells.

// HaveNetkitScrub reports whether netkit devices take scrub and
// peer_scrub (IFLA_NETKIT_SCRUB, Linux 6.13, backported to some 6.12
// stable kernels).
var HaveNetkitScrub = sync.OnceValue(func() error {
	return probeNetkitKnob("scrub=", "6.13", func(nk *netlink.Netkit) { nk.Scrub = netlink.NETKIT_SCRUB_NONE },
		func(nk *netlink.Netkit) bool { return nk.SupportsScrub() && nk.Scrub == netlink.NETKIT_SCRUB_NONE })
})

// HaveNetkitQueues reports whether netkit devices take more than one
// transmit and receive queue (num_tx_queues, num_rx_queues).
var HaveNetkitQueues = sync.OnceValue(func() error {
	return probeNetkitKnob("num_tx_queues=", "6.7", func(nk *netlink.Netkit) { nk.NumTxQueues, nk.NumRxQueues = 2, 2 },
		func(nk *netlink.Netkit) bool { return nk.NumTxQueues == 2 && nk.NumRxQueues == 2 })
})

func probeNetkitKnob(knob, version string, set func(*netlink.Netkit), check func(*netlink.Netkit) bool) error {
	if err := HaveNetkit(); err != nil {
		return err
	}
	ns, err := NewAnonNetns()
	if err != nil {
		return fmt.Errorf("probe netkit %s %w", knob, err)
	}
	defer ns.Close()
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nkprobe0"}, Mode: netlink.NETKIT_MODE_L3}
	set(nk)
	nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "nkprobe1"})
	if err := ns.nl.LinkAdd(nk); err != nil {
		return notSupported("netkit %s needs Linux ≥ %s (running %s): %v", knob, version, KernelRelease(), err)
	}
	got, err := ns.nl.LinkByName("nkprobe0")
	if err != nil {
		return fmt.Errorf("probe netkit %s %w", knob, err)
	}
	if back, ok := got.(*netlink.Netkit); !ok || !check(back) {
		return notSupported("netkit %s needs Linux ≥ %s (running %s)", knob, version, KernelRelease())
	}
	return nil
}

func parseScrub(what, s string) (netlink.NetkitScrub, error) {
	switch s {
	case "", "default":
		return netlink.NETKIT_SCRUB_DEFAULT, nil
	case "none":
		return netlink.NETKIT_SCRUB_NONE, nil
	}
	return 0, fmt.Errorf("%s %q is not a netkit scrub mode; use \"default\" or \"none\"", what, s)
}

// netkitKnobs applies the optional knobs to nk, checking with the probes
// (when probe is set: dry runs do not) that the kernel has each one used.
func (o PairOptions) netkitKnobs(nk *netlink.Netkit, probe bool) error {
	var err error
	if nk.Scrub, err = parseScrub("scrub", o.Scrub); err != nil {
		return err
	}
	if nk.PeerScrub, err = parseScrub("peer_scrub", o.PeerScrub); err != nil {
		return err
	}
	if (o.Scrub != "" || o.PeerScrub != "") && probe {
		if err := HaveNetkitScrub(); err != nil {
			return err
		}
	}
	if o.PeerMTU != 0 && (o.PeerMTU < 68 || o.PeerMTU > 65535) {
		return fmt.Errorf("peer mtu %d is out of range 68..65535", o.PeerMTU)
	}
	for _, q := range []struct {
		name string
		n    int
	}{{"num_tx_queues", o.TxQueues}, {"num_rx_queues", o.RxQueues}} {
		if q.n < 0 || q.n > 4096 {
			return fmt.Errorf("%s=%d is out of range 1..4096", q.name, q.n)
		}
	}
	if o.TxQueues != 0 || o.RxQueues != 0 {
		if probe {
			if err := HaveNetkitQueues(); err != nil {
				return err
			}
		}
		nk.NumTxQueues, nk.NumRxQueues = o.TxQueues, o.RxQueues
	}
	return nil
}
