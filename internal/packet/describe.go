package packet

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// TCP flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80
)

// flagLetters are the TCP flags in tcpdump's order and letters; ACK is
// ".".
var flagLetters = []struct {
	flag   uint8
	letter byte
}{
	{FlagFIN, 'F'}, {FlagSYN, 'S'}, {FlagRST, 'R'}, {FlagPSH, 'P'},
	{FlagURG, 'U'}, {FlagECE, 'E'}, {FlagCWR, 'W'}, {FlagACK, '.'},
}

// ParseFlags reads TCP flags written as letters: F, S, R, P, U, E, W
// (CWR) and A or . for ACK, in any order; "" is no flags.
func ParseFlags(s string) (uint8, error) {
	var f uint8
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'A' {
			c = '.'
		}
		found := false
		for _, fl := range flagLetters {
			if fl.letter == c {
				f |= fl.flag
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown TCP flag %q in %q: use F, S, R, P, U, E, W and A (or .) for ACK", s[i], s)
		}
	}
	return f, nil
}

// FlagString writes TCP flags as tcpdump does: "S", "S.", "P.", "F.".
func FlagString(f uint8) string {
	var b []byte
	for _, fl := range flagLetters {
		if f&fl.flag != 0 {
			b = append(b, fl.letter)
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// icmpNames are ICMP types by name, for IPv4 and for IPv6.
var icmpNames = [2]map[string]uint8{
	{"echo-reply": 0, "unreachable": 3, "redirect": 5, "echo-request": 8, "time-exceeded": 11},
	{"unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "echo-request": 128, "echo-reply": 129,
		"neighbor-solicitation": 135, "neighbor-advertisement": 136},
}

// ICMPType returns the ICMP (v6 false) or ICMPv6 type called name.
func ICMPType(name string, v6 bool) (uint8, error) {
	names := icmpNames[b2i(v6)]
	if t, ok := names[name]; ok {
		return t, nil
	}
	var known []string
	for n := range names {
		known = append(known, fmt.Sprintf("%q", n))
	}
	slices.Sort(known)
	return 0, fmt.Errorf("unknown ICMP type %q; known: %s", name, strings.Join(known, ", "))
}

// ICMPTypeName names an ICMP or ICMPv6 type, or says "type N".
func ICMPTypeName(t uint8, v6 bool) string {
	for n, v := range icmpNames[b2i(v6)] {
		if v == t {
			return n
		}
	}
	return fmt.Sprintf("type %d", t)
}

// ProtoName names the packet's transport: "tcp", "udp", "icmp", "icmp6",
// or "ip proto N"; "ether" for non-IP frames.
func (p *Packet) ProtoName() string {
	switch {
	case !p.IsIP():
		return "ether"
	case p.Proto == ProtoTCP:
		return "tcp"
	case p.Proto == ProtoUDP:
		return "udp"
	case p.Proto == ProtoICMP && p.Src.Is4():
		return "icmp"
	case p.Proto == ProtoICMPv6 && p.Src.Is6():
		return "icmp6"
	}
	return fmt.Sprintf("ip proto %d", p.Proto)
}

// hasPorts says the packet has a TCP or UDP header.
func (p *Packet) hasPorts() bool {
	return p.IsIP() && !p.Fragment && (p.Proto == ProtoTCP || p.Proto == ProtoUDP) && !(p.Truncated && p.SrcPort == 0 && p.DstPort == 0)
}

// String describes the packet in one line, tcpdump style:
//
//	tcp 10.0.0.1:40000 > 10.0.0.2:12345 [S] len 0
//	icmp6 fd00::1 > fd00::2 echo-request id 1 seq 1 len 0
//	vlan 7 udp [fd00::1]:53 > [fd00::2]:40000 len 12
//	ether type 0x0806 len 28
func (p *Packet) String() string {
	var b strings.Builder
	if p.HasVLAN {
		fmt.Fprintf(&b, "vlan %d ", p.VLAN)
	}
	if !p.IsIP() {
		fmt.Fprintf(&b, "ether type %#04x len %d", p.EtherType, len(p.Payload))
		p.notes(&b)
		return b.String()
	}
	b.WriteString(p.ProtoName())
	if p.hasPorts() {
		fmt.Fprintf(&b, " %s > %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	} else {
		fmt.Fprintf(&b, " %s > %s", p.Src, p.Dst)
	}
	switch name := p.ProtoName(); {
	case name == "tcp" && p.hasPorts():
		fmt.Fprintf(&b, " [%s]", FlagString(p.Flags))
	case (name == "icmp" || name == "icmp6") && !p.Fragment && !p.Truncated:
		b.WriteString(" " + ICMPTypeName(p.ICMPType, p.Src.Is6()))
		if p.ICMPCode != 0 {
			fmt.Fprintf(&b, " code %d", p.ICMPCode)
		}
		if p.isEcho() {
			fmt.Fprintf(&b, " id %d seq %d", p.ID, p.Seq)
		}
	}
	fmt.Fprintf(&b, " len %d", len(p.Payload))
	p.notes(&b)
	return b.String()
}

// isEcho says the packet is an ICMP echo request or reply.
func (p *Packet) isEcho() bool {
	switch n := ICMPTypeName(p.ICMPType, p.Src.Is6()); n {
	case "echo-request", "echo-reply":
		return true
	}
	return false
}

func (p *Packet) notes(b *strings.Builder) {
	if p.Fragment {
		b.WriteString(" [fragment]")
	}
	if p.Truncated {
		b.WriteString(" [truncated]")
	}
	if !p.ChecksumOK && p.Raw != nil {
		b.WriteString(" [bad checksum]")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
