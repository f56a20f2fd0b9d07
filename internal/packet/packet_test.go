package packet

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

var (
	v4a, v4b = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6a, v6b = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

// TestRoundTrip builds packets and parses them back: the fields, the
// description and the checksums must survive.
func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		p    Packet
		want string
	}{
		{Packet{Src: v4a, Dst: v4b, Proto: ProtoTCP, SrcPort: 40000, DstPort: 12345, Flags: FlagSYN},
			"tcp 10.0.0.1:40000 > 10.0.0.2:12345 [S] len 0"},
		{Packet{Src: v4a, Dst: v4b, Proto: ProtoTCP, SrcPort: 80, DstPort: 40000, Flags: FlagSYN | FlagACK, Payload: []byte("hello")},
			"tcp 10.0.0.1:80 > 10.0.0.2:40000 [S.] len 5"},
		{Packet{Src: v6a, Dst: v6b, Proto: ProtoUDP, SrcPort: 53, DstPort: 40000, Payload: []byte("odd"), HasVLAN: true, VLAN: 7},
			"vlan 7 udp [fd00::1]:53 > [fd00::2]:40000 len 3"},
		{Packet{Src: v4a, Dst: v4b, Proto: ProtoICMP, ICMPType: 8, ID: 1, Seq: 2},
			"icmp 10.0.0.1 > 10.0.0.2 echo-request id 1 seq 2 len 0"},
		{Packet{Src: v6a, Dst: v6b, Proto: ProtoICMPv6, ICMPType: 129, ID: 9, Seq: 3, Payload: []byte{1, 2, 3}},
			"icmp6 fd00::1 > fd00::2 echo-reply id 9 seq 3 len 3"},
		{Packet{Src: v4a, Dst: v4b, Proto: ProtoICMP, ICMPType: 3, ICMPCode: 3},
			"icmp 10.0.0.1 > 10.0.0.2 unreachable code 3 len 0"},
		{Packet{Src: v4a, Dst: v4b, Proto: 47, Payload: []byte{0, 0, 8, 0}},
			"ip proto 47 10.0.0.1 > 10.0.0.2 len 4"},
		{Packet{EtherType: 0x0806, Payload: make([]byte, 28)},
			"ether type 0x0806 len 28"},
	} {
		b, err := c.p.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		q := Parse(b)
		if got := q.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if !q.ChecksumOK || q.Truncated {
			t.Errorf("%s: checksum ok %v, truncated %v", c.want, q.ChecksumOK, q.Truncated)
		}
		checkFields(t, &c.p, q)
	}
}

// checkFields compares what was built with what was parsed.
func checkFields(t *testing.T, in, out *Packet) {
	t.Helper()
	wantSrc, wantDst := in.EthSrc, in.EthDst
	if wantSrc == nil {
		wantSrc = DefaultEthSrc
	}
	if wantDst == nil {
		wantDst = DefaultEthDst
	}
	ttl := in.TTL
	if ttl == 0 && in.IsIP() {
		ttl = 64
	}
	if !bytes.Equal(out.EthSrc, wantSrc) || !bytes.Equal(out.EthDst, wantDst) ||
		out.HasVLAN != in.HasVLAN || out.VLAN != in.VLAN ||
		out.Src != in.Src || out.Dst != in.Dst || out.Proto != in.Proto || out.TTL != ttl ||
		out.SrcPort != in.SrcPort || out.DstPort != in.DstPort || out.Flags != in.Flags ||
		out.ICMPType != in.ICMPType || out.ICMPCode != in.ICMPCode || out.ID != in.ID || out.Seq != in.Seq ||
		!bytes.Equal(out.Payload, in.Payload) {
		t.Errorf("built %+v, parsed %+v", in, out)
	}
}

// TestChecksums checks built checksums against known frames and that a
// changed byte is noticed.
func TestChecksums(t *testing.T) {
	p := Packet{Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("192.168.0.199"), Proto: ProtoUDP,
		SrcPort: 1024, DstPort: 53, Payload: []byte("abcd")}
	b, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	ip := b[ethLen:]
	// Worked by hand: header words 4500 0020 0000 4000 4011 0000 c0a8 0001 c0a8 00c7.
	if got := binary.BigEndian.Uint16(ip[10:]); got != 0xb8b4 {
		t.Errorf("IPv4 header checksum %#04x, want 0xb8b4", got)
	}
	for _, off := range []int{ethLen + 12, len(b) - 1} {
		c := bytes.Clone(b)
		c[off] ^= 0x10
		if Parse(c).ChecksumOK {
			t.Errorf("byte %d changed, checksum still ok", off)
		}
		if s := Parse(c).String(); !bytes.HasSuffix([]byte(s), []byte("[bad checksum]")) {
			t.Errorf("byte %d changed: %q", off, s)
		}
	}
	// A UDP checksum of 0 over IPv4 means none.
	binary.BigEndian.PutUint16(b[ethLen+ipv4Len+6:], 0)
	if !Parse(b).ChecksumOK {
		t.Error("UDP over IPv4 without checksum is not ok")
	}
}

func TestParseShort(t *testing.T) {
	for _, c := range []struct {
		frame []byte
		want  string
	}{
		{nil, "ether type 0x0000 len 0 [truncated]"},
		{[]byte{1, 2, 3}, "ether type 0x0000 len 3 [truncated]"},
	} {
		if got := Parse(c.frame).String(); got != c.want {
			t.Errorf("Parse(%x) = %q, want %q", c.frame, got, c.want)
		}
	}
	full, _ := (&Packet{Src: v4a, Dst: v4b, Proto: ProtoTCP, SrcPort: 1, DstPort: 2, Flags: FlagSYN}).Bytes()
	if got, want := Parse(full[:ethLen+ipv4Len+4]).String(), "tcp 10.0.0.1 > 10.0.0.2 len 4 [truncated]"; got != want {
		t.Errorf("truncated TCP: %q, want %q", got, want)
	}
	// Ethernet padding is not payload.
	padded := append(bytes.Clone(full), make([]byte, 6)...)
	if q := Parse(padded); len(q.Payload) != 0 || !q.ChecksumOK {
		t.Errorf("padded frame: %s", q)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, p := range []Packet{
		{Src: v4a, Dst: v6b, Proto: ProtoTCP},
		{Src: v4a, Proto: ProtoTCP},
		{Dst: v4a},
		{Src: v6a, Dst: v6b, Proto: ProtoICMP},
		{Src: v4a, Dst: v4b, Proto: ProtoICMPv6},
		{Src: v4a, Dst: v4b, HasVLAN: true, VLAN: 4096},
		{Src: v4a, Dst: v4b, EthSrc: net.HardwareAddr{1, 2}},
		{Src: v4a, Dst: v4b, Proto: ProtoUDP, Payload: make([]byte, 0x10000)},
	} {
		if b, err := p.Bytes(); err == nil {
			t.Errorf("%+v built %x", p, b)
		}
	}
}

func TestFlags(t *testing.T) {
	for in, want := range map[string]string{"S": "S", "SA": "S.", "S.": "S.", "PA": "P.", "FA": "F.", "R": "R", "": "none", "FSRPAUEW": "FSRPUEW."} {
		f, err := ParseFlags(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := FlagString(f); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	if _, err := ParseFlags("SX"); err == nil {
		t.Error("SX parsed")
	}
	if _, err := ICMPType("echo", false); err == nil {
		t.Error("echo is a type")
	}
	if ty, _ := ICMPType("echo-request", true); ty != 128 {
		t.Errorf("ICMPv6 echo-request is %d", ty)
	}
}
