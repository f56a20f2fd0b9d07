package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	ethLen  = 14
	vlanLen = 4
	ipv4Len = 20
	ipv6Len = 40
	tcpLen  = 20
	udpLen  = 8
	icmpLen = 8
)

// Bytes builds the frame p describes: Ethernet (and VLAN) header, IP
// header, transport header and payload, with every length and checksum
// filled in. A packet without addresses is a non-IP frame: EtherType and
// Payload follow the Ethernet header as they are.
func (p *Packet) Bytes() ([]byte, error) {
	src, dst := p.EthSrc, p.EthDst
	if src == nil {
		src = DefaultEthSrc
	}
	if dst == nil {
		dst = DefaultEthDst
	}
	if len(src) != 6 || len(dst) != 6 {
		return nil, errors.New("an Ethernet address has 6 bytes")
	}
	if p.HasVLAN && p.VLAN > 4095 {
		return nil, fmt.Errorf("VLAN ID %d is out of range 0..4095", p.VLAN)
	}
	etherType := p.EtherType
	var l3 []byte
	if p.IsIP() {
		var err error
		if l3, err = p.ipPacket(); err != nil {
			return nil, err
		}
		etherType = EtherTypeIPv4
		if p.Src.Is6() {
			etherType = EtherTypeIPv6
		}
	} else {
		if p.Dst.IsValid() {
			return nil, errors.New("a packet has both IP addresses or none")
		}
		l3 = p.Payload
	}
	b := make([]byte, 0, ethLen+vlanLen+len(l3))
	b = append(b, dst...)
	b = append(b, src...)
	if p.HasVLAN {
		b = binary.BigEndian.AppendUint16(b, EtherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, p.VLAN)
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, l3...), nil
}

// ipPacket builds the IP header, the transport header and the payload.
func (p *Packet) ipPacket() ([]byte, error) {
	if !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() || p.Src.Is4In6() || p.Dst.Is4In6() {
		return nil, fmt.Errorf("source %v and destination %v must both be IPv4 or both IPv6", p.Src, p.Dst)
	}
	l4, err := p.transport()
	if err != nil {
		return nil, err
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = 64
	}
	var ip []byte
	if p.Src.Is4() {
		if ipv4Len+len(l4) > 0xffff {
			return nil, fmt.Errorf("packet of %d bytes is too long for IPv4", ipv4Len+len(l4))
		}
		ip = make([]byte, ipv4Len, ipv4Len+len(l4))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4Len+len(l4)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8], ip[9] = ttl, p.Proto
		copy(ip[12:], p.Src.AsSlice())
		copy(ip[16:], p.Dst.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip)))
	} else {
		if len(l4) > 0xffff {
			return nil, fmt.Errorf("payload of %d bytes is too long for IPv6", len(l4))
		}
		ip = make([]byte, ipv6Len, ipv6Len+len(l4))
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = p.Proto, ttl
		copy(ip[8:], p.Src.AsSlice())
		copy(ip[24:], p.Dst.AsSlice())
	}
	if off := checksumOffset(p.Proto, p.Src.Is6()); off >= 0 && len(l4) >= off+2 {
		binary.BigEndian.PutUint16(l4[off:], p.transportChecksum(l4))
	}
	return append(ip, l4...), nil
}

// transport builds the transport header and payload, checksum zero.
func (p *Packet) transport() ([]byte, error) {
	var h []byte
	switch p.Proto {
	case ProtoTCP:
		h = make([]byte, tcpLen)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		h[12] = tcpLen / 4 << 4
		h[13] = p.Flags
		binary.BigEndian.PutUint16(h[14:], 65535) // window
	case ProtoUDP:
		if udpLen+len(p.Payload) > 0xffff {
			return nil, fmt.Errorf("UDP payload of %d bytes is too long", len(p.Payload))
		}
		h = make([]byte, udpLen)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(udpLen+len(p.Payload)))
	case ProtoICMP, ProtoICMPv6:
		if (p.Proto == ProtoICMPv6) != p.Src.Is6() {
			return nil, fmt.Errorf("protocol %d does not go with %v", p.Proto, p.Src)
		}
		h = make([]byte, icmpLen)
		h[0], h[1] = p.ICMPType, p.ICMPCode
		binary.BigEndian.PutUint16(h[4:], p.ID)
		binary.BigEndian.PutUint16(h[6:], p.Seq)
	}
	return append(h, p.Payload...), nil
}

// checksumOffset is where the transport checksum of proto is, or -1.
func checksumOffset(proto uint8, v6 bool) int {
	switch {
	case proto == ProtoTCP:
		return 16
	case proto == ProtoUDP:
		return 6
	case proto == ProtoICMP && !v6, proto == ProtoICMPv6 && v6:
		return 2
	}
	return -1
}

// transportChecksum is the checksum of l4 (its checksum field zero): over
// the pseudo-header too, except for ICMP over IPv4.
func (p *Packet) transportChecksum(l4 []byte) uint16 {
	s := sum(0, l4)
	if p.Proto != ProtoICMP {
		s = pseudoSum(p, len(l4), s)
	}
	c := ^fold(s)
	if c == 0 && p.Proto == ProtoUDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	return c
}

// pseudoSum adds the pseudo-header of a transport segment of n bytes.
func pseudoSum(p *Packet, n int, s uint32) uint32 {
	s = sum(s, p.Src.AsSlice())
	s = sum(s, p.Dst.AsSlice())
	return s + uint32(p.Proto) + uint32(n>>16) + uint32(n&0xffff)
}

// sum adds b to s as big-endian 16-bit words, the last byte padded.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if s >= 1<<31 {
			s = s&0xffff + s>>16
		}
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds a sum into 16 bits, ones' complement.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
