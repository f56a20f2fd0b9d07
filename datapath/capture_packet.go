package datapath

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Packet is what a Capture records of one packet: enough to count, filter
// and list, not the payload.
type Packet struct {
	// Dev is the device, "ns/dev".
	Dev string
	// Time is when the kernel handed the packet to the capture.
	Time time.Time
	// Proto is "icmp", "icmp6", "tcp", "udp", "arp", or the IP protocol
	// or EtherType number in decimal for others.
	Proto string
	// Src and Dst are the IP addresses; invalid for non-IP packets.
	Src, Dst netip.Addr
	// Sport and Dport are the TCP or UDP ports, 0 for other protocols.
	Sport, Dport uint16
	// Flags are the TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08,
	// ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80).
	Flags uint8
	// ICMPType and ICMPCode are an ICMP or ICMPv6 packet's type and code.
	ICMPType, ICMPCode uint8
	// Outgoing is true for packets the device transmitted, false for
	// packets it received.
	Outgoing bool
	// Len is the packet's length from the network header on.
	Len int
}

// TCPFlags are the flags of p as tcpdump writes them: "S", "S.", "P.",
// "F.", "R", "." (ACK alone).
func (p Packet) TCPFlags() string {
	var b strings.Builder
	for _, f := range []struct {
		bit uint8
		c   byte
	}{{0x02, 'S'}, {0x01, 'F'}, {0x08, 'P'}, {0x04, 'R'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}} {
		if p.Flags&f.bit != 0 {
			b.WriteByte(f.c)
		}
	}
	if p.Flags&0x10 != 0 {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// parsePacket reads the addresses, protocol, ports and flags of a packet
// that starts at its network header.
func parsePacket(ethertype uint16, b []byte) Packet {
	var p Packet
	switch ethertype {
	case unix.ETH_P_IP:
		if len(b) < 20 {
			break
		}
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.Proto = ipProtoName(b[9])
		hl := int(b[0]&0x0f) * 4
		// Later fragments carry no transport header.
		if frag := uint16(b[6]&0x1f)<<8 | uint16(b[7]); frag == 0 && hl >= 20 && hl <= len(b) {
			p.transport(b[9], b[hl:])
		}
		return p
	case unix.ETH_P_IPV6:
		if len(b) < 40 {
			break
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		p.Proto = ipProtoName(b[6])
		p.transport(b[6], b[40:])
		return p
	case unix.ETH_P_ARP:
		p.Proto = "arp"
		return p
	}
	p.Proto = fmt.Sprint(ethertype)
	return p
}

// transport reads the ports and flags, or ICMP type and code, of the
// transport header b of protocol proto.
func (p *Packet) transport(proto byte, b []byte) {
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
		if len(b) >= 4 {
			p.Sport, p.Dport = uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3])
		}
		if proto == unix.IPPROTO_TCP && len(b) >= 14 {
			p.Flags = b[13]
		}
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		if len(b) >= 2 {
			p.ICMPType, p.ICMPCode = b[0], b[1]
		}
	}
}

func ipProtoName(proto byte) string {
	switch proto {
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "icmp6"
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return fmt.Sprint(proto)
}
