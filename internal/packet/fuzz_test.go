package packet

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary frames to the parser: it must not panic, must
// describe every frame in one line, and frames it reads as whole and
// correct must be built back by Bytes with the same fields.
func FuzzParse(f *testing.F) {
	for _, p := range []Packet{
		{Src: v4a, Dst: v4b, Proto: ProtoTCP, SrcPort: 1, DstPort: 2, Flags: FlagSYN},
		{Src: v6a, Dst: v6b, Proto: ProtoUDP, SrcPort: 1, DstPort: 2, HasVLAN: true, VLAN: 3, Payload: []byte("x")},
		{Src: v4a, Dst: v4b, Proto: ProtoICMP, ICMPType: 8},
		{Src: v6a, Dst: v6b, Proto: ProtoICMPv6, ICMPType: 128},
	} {
		b, _ := p.Bytes()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		p := Parse(frame)
		if s := p.String(); s == "" || strings.Contains(s, "\n") {
			t.Fatalf("description %q", s)
		}
		if !p.IsIP() || p.Truncated || p.Fragment || !p.ChecksumOK {
			return
		}
		q := *p
		q.Raw = nil
		b, err := q.Bytes()
		if err != nil {
			return // e.g. ICMP over the other family: parsed as a plain payload
		}
		r := Parse(b)
		if r.String() != p.String() || !r.ChecksumOK {
			t.Fatalf("rebuilt %q as %q", p, r)
		}
	})
}

// FuzzBuild builds packets from arbitrary fields and parses them back.
func FuzzBuild(f *testing.F) {
	f.Add(true, uint8(ProtoTCP), uint16(40000), uint16(80), uint8(FlagSYN), []byte("hi"), false, uint16(0), uint8(64), uint8(8))
	f.Add(false, uint8(ProtoUDP), uint16(53), uint16(5353), uint8(0), []byte{}, true, uint16(4095), uint8(1), uint8(0))
	f.Add(false, uint8(ProtoICMPv6), uint16(0), uint16(0), uint8(0), []byte{1}, false, uint16(0), uint8(0), uint8(128))
	f.Fuzz(func(t *testing.T, v4 bool, proto uint8, sport, dport uint16, flags uint8, payload []byte, vlan bool, vid uint16, ttl uint8, icmpType uint8) {
		p := Packet{Src: v6a, Dst: v6b, Proto: proto, SrcPort: sport, DstPort: dport, Flags: flags,
			Payload: payload, HasVLAN: vlan, VLAN: vid, TTL: ttl, ICMPType: icmpType, ID: sport, Seq: dport}
		if v4 {
			p.Src, p.Dst = v4a, netip.AddrFrom4([4]byte{byte(sport), byte(dport), 1, 2})
		}
		b, err := p.Bytes()
		if err != nil {
			return
		}
		q := Parse(b)
		if !q.ChecksumOK || q.Truncated || !bytes.Equal(q.Raw, b) {
			t.Fatalf("%+v: parsed %s (checksum ok %v)", p, q, q.ChecksumOK)
		}
		want := p
		switch {
		case proto == ProtoTCP:
			want.ICMPType, want.ID, want.Seq = 0, 0, 0
		case proto == ProtoUDP:
			want.ICMPType, want.ID, want.Seq, want.Flags = 0, 0, 0, 0
		case proto == ProtoICMP && v4, proto == ProtoICMPv6 && !v4:
			want.SrcPort, want.DstPort, want.Flags = 0, 0, 0
		default:
			want = Packet{Src: p.Src, Dst: p.Dst, Proto: proto, TTL: ttl, HasVLAN: vlan, VLAN: vid, Payload: payload}
		}
		if !vlan {
			want.VLAN = 0
		}
		if len(want.Payload) == 0 {
			want.Payload = q.Payload[:0:0]
		}
		checkFields(t, &want, q)
	})
}
