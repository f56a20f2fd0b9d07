// Package packet builds network frames — Ethernet, 802.1Q VLAN, IPv4 or
// IPv6, and TCP, UDP, ICMP or ICMPv6 — with correct lengths and
// checksums, and parses a frame back into its fields and a one-line,
// tcpdump-style description. It is plain Go: it needs no privileges and
// no kernel, so the builders and the parser are fuzzed anywhere.
//
// Frames start with an Ethernet header, as tc and XDP programs see them
// and as BPF_PROG_TEST_RUN wants them.
package packet

import (
	"net"
	"net/netip"
)

// IP protocol numbers of the transports the package knows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// EtherTypes the package knows.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100
)

// Default link-layer addresses of built frames: locally administered.
var (
	DefaultEthSrc = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	DefaultEthDst = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// Packet is a frame's fields. Build fills in what a frame needs from
// them; Parse sets them from a frame.
type Packet struct {
	// EthSrc and EthDst are the Ethernet addresses; nil means the
	// defaults when building.
	EthSrc, EthDst net.HardwareAddr
	// VLAN is the 802.1Q VLAN ID when HasVLAN is set.
	VLAN    uint16
	HasVLAN bool
	// EtherType is the type of the Ethernet payload (after the VLAN
	// tag). Building an IP packet sets it from the addresses.
	EtherType uint16

	// Src and Dst are the IP addresses; both invalid for a non-IP frame.
	Src, Dst netip.Addr
	// Proto is the IP protocol (IPv6: the next header).
	Proto uint8
	// TTL is the IPv4 TTL or IPv6 hop limit; 0 means 64 when building.
	TTL uint8

	// SrcPort and DstPort are the TCP or UDP ports.
	SrcPort, DstPort uint16
	// Flags are the TCP flags (FlagSYN, ...).
	Flags uint8
	// ICMPType and ICMPCode are the ICMP or ICMPv6 type and code; ID
	// and Seq the echo identifier and sequence number.
	ICMPType, ICMPCode uint8
	ID, Seq            uint16

	// Payload is what follows the transport header (for other
	// protocols, the IP payload; for non-IP frames, the Ethernet
	// payload).
	Payload []byte

	// Set by Parse only:

	// ChecksumOK says the IPv4 header and transport checksums are right
	// (true where there is nothing to check).
	ChecksumOK bool
	// Truncated says the frame ends before its headers or the length
	// they declare.
	Truncated bool
	// Fragment says the packet is a non-first IPv4 fragment: it carries
	// no transport header.
	Fragment bool
	// Raw is the whole frame.
	Raw []byte
}

// IsIP reports whether the packet is an IPv4 or IPv6 packet.
func (p *Packet) IsIP() bool { return p.Src.IsValid() }
