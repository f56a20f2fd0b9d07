package packet

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Parse reads an Ethernet frame. It never fails: what it cannot read is
// reported by Truncated (the frame ends early) or left in Payload (a
// protocol it does not know). Ethernet padding after the IP packet is
// not part of Payload.
func Parse(frame []byte) *Packet {
	p := &Packet{Raw: frame, ChecksumOK: true}
	if len(frame) < ethLen {
		p.Truncated = true
		p.Payload = frame
		return p
	}
	p.EthDst = net.HardwareAddr(frame[0:6])
	p.EthSrc = net.HardwareAddr(frame[6:12])
	p.EtherType = binary.BigEndian.Uint16(frame[12:])
	rest := frame[ethLen:]
	if p.EtherType == EtherTypeVLAN {
		if len(rest) < vlanLen {
			p.Truncated = true
			p.Payload = rest
			return p
		}
		p.HasVLAN = true
		p.VLAN = binary.BigEndian.Uint16(rest) & 0x0fff
		p.EtherType = binary.BigEndian.Uint16(rest[2:])
		rest = rest[vlanLen:]
	}
	switch p.EtherType {
	case EtherTypeIPv4:
		p.parseIPv4(rest)
	case EtherTypeIPv6:
		p.parseIPv6(rest)
	default:
		p.Payload = rest
	}
	return p
}

func (p *Packet) parseIPv4(b []byte) {
	hl := 0
	if len(b) > 0 {
		hl = int(b[0]&0x0f) * 4
	}
	if len(b) < ipv4Len || b[0]>>4 != 4 || hl < ipv4Len || len(b) < hl {
		p.Truncated = len(b) < ipv4Len || len(b) < hl
		p.Payload = b
		return
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.TTL, p.Proto = b[8], b[9]
	p.ChecksumOK = fold(sum(0, b[:hl])) == 0xffff
	total := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case total < hl:
		total = hl
		p.Truncated = true
	case total > len(b):
		total = len(b)
		p.Truncated = true
	}
	l4 := b[hl:total]
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		p.Fragment = true
		p.Payload = l4
		return
	}
	more := binary.BigEndian.Uint16(b[6:])&0x2000 != 0
	p.parseTransport(l4, !p.Truncated && !more)
}

func (p *Packet) parseIPv6(b []byte) {
	if len(b) < ipv6Len || b[0]>>4 != 6 {
		p.Truncated = len(b) < ipv6Len
		p.Payload = b
		return
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	p.Proto, p.TTL = b[6], b[7]
	n := ipv6Len + int(binary.BigEndian.Uint16(b[4:]))
	if n > len(b) {
		n = len(b)
		p.Truncated = true
	}
	p.parseTransport(b[ipv6Len:n], !p.Truncated)
}

// parseTransport reads the transport header of l4; whole says l4 is the
// whole segment, so its checksum can be checked.
func (p *Packet) parseTransport(l4 []byte, whole bool) {
	p.Payload = l4
	var hl int
	switch {
	case p.Proto == ProtoTCP:
		if len(l4) < tcpLen {
			p.Truncated = true
			return
		}
		hl = int(l4[12]>>4) * 4
		if hl < tcpLen || hl > len(l4) {
			p.Truncated = true
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(l4[0:])
		p.DstPort = binary.BigEndian.Uint16(l4[2:])
		p.Flags = l4[13]
	case p.Proto == ProtoUDP:
		if len(l4) < udpLen {
			p.Truncated = true
			return
		}
		hl = udpLen
		p.SrcPort = binary.BigEndian.Uint16(l4[0:])
		p.DstPort = binary.BigEndian.Uint16(l4[2:])
		if n := int(binary.BigEndian.Uint16(l4[4:])); n >= udpLen && n <= len(l4) {
			l4 = l4[:n]
		}
	case p.Proto == ProtoICMP && p.Src.Is4(), p.Proto == ProtoICMPv6 && p.Src.Is6():
		if len(l4) < icmpLen {
			p.Truncated = true
			return
		}
		hl = icmpLen
		p.ICMPType, p.ICMPCode = l4[0], l4[1]
		p.ID = binary.BigEndian.Uint16(l4[4:])
		p.Seq = binary.BigEndian.Uint16(l4[6:])
	default:
		return
	}
	p.Payload = l4[hl:]
	if !whole {
		return
	}
	if p.Proto == ProtoUDP && p.Src.Is4() && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return // no checksum
	}
	s := sum(0, l4)
	if p.Proto != ProtoICMP {
		s = pseudoSum(p, len(l4), s)
	}
	if fold(s) != 0xffff {
		p.ChecksumOK = false
	}
}
