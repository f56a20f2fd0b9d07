package datapath

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Feature probes for netkit's optional knobs. Each creates a netkit pair
// with the knob set in a throwaway namespace and reads the device back:
// the kernel parses netkit's attributes leniently, so an attribute it does
// not know is ignored rather than refused, and only the read-back tells.
// Like HaveNetkit, each returns nil or an error wrapping ErrNotSupported,
// kept for the life of the process, or another error when the probe could
// not tell, and then probes again at the next call.

var netkitScrubFeature = &feature{probe: func() error {
	return probeNetkitKnob("scrub=", "6.13", func(nk *netlink.Netkit) { nk.Scrub = netlink.NETKIT_SCRUB_NONE },
		func(nk *netlink.Netkit) bool { return nk.SupportsScrub() && nk.Scrub == netlink.NETKIT_SCRUB_NONE })
}}

// HaveNetkitScrub reports whether netkit devices take scrub and
// peer_scrub (IFLA_NETKIT_SCRUB, Linux 6.13, backported to some 6.12
// stable kernels).
func HaveNetkitScrub() error { return netkitScrubFeature.result() }

var netkitTxQueuesFeature = &feature{probe: func() error {
	return probeNetkitKnob("num_tx_queues=", "6.7", func(nk *netlink.Netkit) { nk.NumTxQueues, nk.NumRxQueues = 2, 1 },
		func(nk *netlink.Netkit) bool { return nk.NumTxQueues == 2 })
}}

var netkitRxQueuesFeature = &feature{probe: func() error {
	return probeNetkitKnob("num_rx_queues=", "6.7", func(nk *netlink.Netkit) { nk.NumTxQueues, nk.NumRxQueues = 1, 2 },
		func(nk *netlink.Netkit) bool { return nk.NumRxQueues == 2 })
}}

// HaveNetkitQueues reports whether netkit devices take more than one
// transmit queue (num_tx_queues, when tx is set) or receive queue
// (num_rx_queues, when rx is set). Linux 6.7 takes both; later kernels
// (7.3 does) refuse more than one transmit queue but keep taking receive
// queues.
func HaveNetkitQueues(tx, rx bool) error {
	if tx {
		if err := netkitTxQueuesFeature.result(); err != nil {
			return err
		}
	}
	if rx {
		return netkitRxQueuesFeature.result()
	}
	return nil
}

// knobRefused is the error for a netkit knob the running kernel refused
// or ignored: one that names the release that brought the knob when the
// kernel is older, and that says the kernel refuses it when it is not.
func knobRefused(knob, version string, err error) error {
	why := ""
	if err != nil {
		why = ": " + err.Error()
	}
	var major, minor int
	fmt.Sscanf(version, "%d.%d", &major, &minor)
	if releaseAtLeast(KernelRelease(), major, minor) {
		return notSupported("netkit %s: the running kernel %s refuses it%s", strings.TrimSuffix(knob, "="), KernelRelease(), why)
	}
	return notSupported("netkit %s needs Linux ≥ %s (running %s)%s", knob, version, KernelRelease(), why)
}

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
	if err := ns.Handle().LinkAdd(nk); err != nil {
		if inconclusive(err) {
			return fmt.Errorf("probe netkit %s %w", knob, err)
		}
		return knobRefused(knob, version, err)
	}
	got, err := ns.Handle().LinkByName("nkprobe0")
	if err != nil {
		return fmt.Errorf("probe netkit %s %w", knob, err)
	}
	if back, ok := got.(*netlink.Netkit); !ok || !check(back) {
		return knobRefused(knob, version, nil)
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
	if o.Headroom < 0 || o.Headroom > 0xffff || o.Tailroom < 0 || o.Tailroom > 0xffff {
		return fmt.Errorf("headroom and tailroom are 0..65535 bytes")
	}
	if (o.Headroom != 0 || o.Tailroom != 0) && probe {
		if err := HaveNetkitRoom(); err != nil {
			return err
		}
	}
	if o.TxQueues != 0 || o.RxQueues != 0 {
		if probe {
			if err := HaveNetkitQueues(o.TxQueues > 1, o.RxQueues > 1); err != nil {
				return err
			}
		}
		nk.NumTxQueues, nk.NumRxQueues = o.TxQueues, o.RxQueues
	}
	return nil
}

// Headroom and tailroom (Linux 6.14): vishvananda/netlink v1.3.1 cannot
// send them, so a pair that sets them is created with a request built
// here.
const (
	iflaNetkitHeadroom = nl.IFLA_NETKIT_PEER_SCRUB + 1
	iflaNetkitTailroom = nl.IFLA_NETKIT_PEER_SCRUB + 2
)

var netkitRoomFeature = &feature{probe: probeNetkitRoom}

// HaveNetkitRoom reports whether the running kernel's netkit devices take
// headroom and tailroom settings (Linux 6.14 or later). Older kernels
// ignore the attributes silently, so the probe creates a pair asking for
// a headroom in a throwaway namespace and checks that the kernel reports
// it back.
func HaveNetkitRoom() error { return netkitRoomFeature.result() }

func probeNetkitRoom() error {
	if err := HaveNetkit(); err != nil {
		return err
	}
	ns, err := NewAnonNetns()
	if err != nil {
		return fmt.Errorf("probe netkit headroom: %w", err)
	}
	defer ns.Close()
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nkprobe0"}, Mode: netlink.NETKIT_MODE_L3,
		Scrub: netlink.NETKIT_SCRUB_DEFAULT, PeerScrub: netlink.NETKIT_SCRUB_DEFAULT}
	if err := createNetkit(ns, nk, netlink.LinkAttrs{Name: "nkprobe1"}, nil, 64, 0); err != nil {
		if inconclusive(err) {
			return fmt.Errorf("probe netkit headroom: %w", err)
		}
		// Kernels that check the attribute refuse what they lack.
		return notSupported("netkit headroom=/tailroom= needs Linux ≥ 6.14 (running %s): %v", KernelRelease(), err)
	}
	data, err := netkitInfoData(ns, "nkprobe0")
	if err != nil {
		return fmt.Errorf("probe netkit headroom: %w", err)
	}
	if _, ok := data[iflaNetkitHeadroom]; !ok {
		return notSupported("netkit headroom=/tailroom= needs Linux ≥ 6.14 (running %s)", KernelRelease())
	}
	return nil
}

// createNetkit creates a netkit pair with one RTM_NEWLINK request built
// here, for the attributes the netlink library cannot send: headroom and
// tailroom (0 leaves them out). peerNs nil keeps the peer in ns.
func createNetkit(ns *Netns, nk *netlink.Netkit, peer netlink.LinkAttrs, peerNs *Netns, headroom, tailroom uint16) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(nk.Index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(nk.Name)))
	if nk.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(nk.MTU))))
	}
	if nk.NumTxQueues > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(uint32(nk.NumTxQueues))))
	}
	if nk.NumRxQueues > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(uint32(nk.NumRxQueues))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("netkit"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_NETKIT_MODE, nl.Uint32Attr(uint32(nk.Mode)))
	data.AddRtAttr(nl.IFLA_NETKIT_POLICY, nl.Uint32Attr(uint32(nk.Policy)))
	data.AddRtAttr(nl.IFLA_NETKIT_PEER_POLICY, nl.Uint32Attr(uint32(nk.PeerPolicy)))
	data.AddRtAttr(nl.IFLA_NETKIT_SCRUB, nl.Uint32Attr(uint32(nk.Scrub)))
	data.AddRtAttr(nl.IFLA_NETKIT_PEER_SCRUB, nl.Uint32Attr(uint32(nk.PeerScrub)))
	if headroom != 0 {
		data.AddRtAttr(iflaNetkitHeadroom, nl.Uint16Attr(headroom))
	}
	if tailroom != 0 {
		data.AddRtAttr(iflaNetkitTailroom, nl.Uint16Attr(tailroom))
	}
	pi := data.AddRtAttr(nl.IFLA_NETKIT_PEER_INFO, nil)
	pi.AddChild(nl.NewIfInfomsg(unix.AF_UNSPEC))
	pi.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer.Name))
	if peer.MTU > 0 {
		pi.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(peer.MTU)))
	}
	if nk.NumTxQueues > 0 {
		pi.AddRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(uint32(nk.NumTxQueues)))
	}
	if nk.NumRxQueues > 0 {
		pi.AddRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(uint32(nk.NumRxQueues)))
	}
	if peerNs != nil {
		h, err := peerNs.acquire()
		if err != nil {
			return err
		}
		defer peerNs.release(h)
		pi.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(h.fd())))
	}
	req.AddData(info)
	return ns.Do(func() error {
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// netkitInfoData returns the IFLA_INFO_DATA attributes the kernel reports
// for the netkit device name in ns, by type.
func netkitInfoData(ns *Netns, name string) (map[uint16][]byte, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	var msgs [][]byte
	err := ns.Do(func() error {
		var err error
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get link %s: %w", name, err)
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return nil, fmt.Errorf("get link %s: %d answers", name, len(msgs))
	}
	attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
	if err != nil {
		return nil, err
	}
	out := map[uint16][]byte{}
	for _, a := range attrs {
		if a.Attr.Type&nl.NLA_TYPE_MASK != unix.IFLA_LINKINFO {
			continue
		}
		infos, err := nl.ParseRouteAttr(a.Value)
		if err != nil {
			return nil, err
		}
		for _, i := range infos {
			if i.Attr.Type&nl.NLA_TYPE_MASK != nl.IFLA_INFO_DATA {
				continue
			}
			ds, err := nl.ParseRouteAttr(i.Value)
			if err != nil {
				return nil, err
			}
			for _, d := range ds {
				out[d.Attr.Type&nl.NLA_TYPE_MASK] = d.Value
			}
		}
	}
	return out, nil
}
