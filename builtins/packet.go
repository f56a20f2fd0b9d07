package builtins

import (
	"fmt"
	"net"

	"github.com/nkscript/nkscript/internal/packet"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Packet is a network frame, built by tcp(), udp(), icmp() or packet(),
// or returned by prog.run(): its bytes and what they parse to.
type Packet struct {
	object
	p *packet.Packet
}

var (
	_ starlark.HasAttrs   = (*Packet)(nil)
	_ starlark.Comparable = (*Packet)(nil)
)

// newPacket parses frame into a packet value.
func newPacket(frame []byte) *Packet { return &Packet{p: packet.Parse(frame)} }

func (p *Packet) String() string {
	if p.p == nil {
		return "packet()"
	}
	return p.p.String()
}
func (p *Packet) Type() string { return "packet" }
func (p *Packet) Hash() (uint32, error) {
	if p.p == nil {
		return 0, nil
	}
	return starlark.String(p.p.Raw).Hash()
}

// CompareSameType compares packets by their bytes: == and != only.
func (p *Packet) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	q := y.(*Packet)
	eq := string(p.p.Raw) == string(q.p.Raw)
	switch op {
	case syntax.EQL:
		return eq, nil
	case syntax.NEQ:
		return !eq, nil
	}
	return false, fmt.Errorf("packets compare with == and != only, not %s", op)
}

func (p *Packet) AttrNames() []string {
	return []string{"bytes", "checksum_ok", "dport", "dst", "eth_dst", "eth_src", "flags", "icmp_type",
		"id", "len", "payload", "proto", "seq", "sport", "src", "ttl", "vlan"}
}

func (p *Packet) Attr(name string) (starlark.Value, error) {
	if p.p == nil {
		return nil, nil
	}
	q := p.p
	isIP, ports := q.IsIP(), q.IsIP() && (q.Proto == packet.ProtoTCP || q.Proto == packet.ProtoUDP) && !q.Fragment
	icmp := q.IsIP() && (q.ProtoName() == "icmp" || q.ProtoName() == "icmp6")
	switch name {
	case "bytes":
		return starlark.Bytes(q.Raw), nil
	case "checksum_ok":
		return starlark.Bool(q.ChecksumOK), nil
	case "len":
		return starlark.MakeInt(len(q.Payload)), nil
	case "payload":
		return starlark.Bytes(q.Payload), nil
	case "proto":
		if isIP && q.ProtoName() != fmt.Sprintf("ip proto %d", q.Proto) {
			return starlark.String(q.ProtoName()), nil
		}
		return orNone(isIP, starlark.MakeInt(int(q.Proto))), nil
	case "src":
		return orNone(isIP, starlark.String(q.Src.String())), nil
	case "dst":
		return orNone(isIP, starlark.String(q.Dst.String())), nil
	case "ttl":
		return orNone(isIP, starlark.MakeInt(int(q.TTL))), nil
	case "sport":
		return orNone(ports, starlark.MakeInt(int(q.SrcPort))), nil
	case "dport":
		return orNone(ports, starlark.MakeInt(int(q.DstPort))), nil
	case "flags":
		return orNone(ports && q.Proto == packet.ProtoTCP, starlark.String(packet.FlagString(q.Flags))), nil
	case "icmp_type":
		return orNone(icmp, starlark.String(packet.ICMPTypeName(q.ICMPType, q.Src.Is6()))), nil
	case "id":
		return orNone(icmp, starlark.MakeInt(int(q.ID))), nil
	case "seq":
		return orNone(icmp, starlark.MakeInt(int(q.Seq))), nil
	case "vlan":
		return orNone(q.HasVLAN, starlark.MakeInt(int(q.VLAN))), nil
	case "eth_src":
		return orNone(q.EthSrc != nil, starlark.String(q.EthSrc.String())), nil
	case "eth_dst":
		return orNone(q.EthDst != nil, starlark.String(q.EthDst.String())), nil
	}
	return nil, nil
}

// orNone is v if ok, else None.
func orNone(ok bool, v starlark.Value) starlark.Value {
	if !ok {
		return starlark.None
	}
	return v
}

// frameArgs are the arguments every packet builder takes.
type frameArgs struct {
	src, dst addrArg
	payload  payloadArg
	ttl      int
	eth      ethArg
	vlan     vlanArg
}

// pairs are frameArgs' parameters for unpackArgs, around the builder's
// own: src and dst first, the framing last.
func (f *frameArgs) pairs(own ...any) []any {
	f.ttl = 64
	pairs := append([]any{"src", &f.src, "dst", &f.dst}, own...)
	return append(pairs, "payload?", &f.payload, "ttl?", &f.ttl, "eth??", &f.eth, "vlan??", &f.vlan)
}

// build makes the packet value of p, framed as f says.
func (f *frameArgs) build(p packet.Packet) (starlark.Value, error) {
	if f.ttl < 1 || f.ttl > 255 {
		return nil, fmt.Errorf("ttl=%d is out of range 1..255", f.ttl)
	}
	p.Src, p.Dst, p.Payload, p.TTL = f.src.a, f.dst.a, []byte(f.payload), uint8(f.ttl)
	p.EthSrc, p.EthDst = f.eth.src, f.eth.dst
	if f.vlan.set {
		p.HasVLAN, p.VLAN = true, f.vlan.id
	}
	b, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	return newPacket(b), nil
}

func tcpFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f frameArgs
	sport, dport, flags := portArg(40000), portArg(80), "S"
	if err := unpackArgs(b, args, kwargs, f.pairs("sport?", &sport, "dport?", &dport, "flags?", &flags)...); err != nil {
		return nil, err
	}
	fl, err := packet.ParseFlags(flags)
	if err != nil {
		return nil, err
	}
	return f.build(packet.Packet{Proto: packet.ProtoTCP, SrcPort: uint16(sport), DstPort: uint16(dport), Flags: fl})
}

func udpFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f frameArgs
	sport, dport := portArg(40000), portArg(53)
	if err := unpackArgs(b, args, kwargs, f.pairs("sport?", &sport, "dport?", &dport)...); err != nil {
		return nil, err
	}
	return f.build(packet.Packet{Proto: packet.ProtoUDP, SrcPort: uint16(sport), DstPort: uint16(dport)})
}

func icmpFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f frameArgs
	typ, code, id, seq := "echo-request", 0, 1, 1
	if err := unpackArgs(b, args, kwargs, f.pairs("type?", &typ, "code?", &code, "id?", &id, "seq?", &seq)...); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name      string
		v, maxVal int
	}{{"code", code, 255}, {"id", id, 65535}, {"seq", seq, 65535}} {
		if c.v < 0 || c.v > c.maxVal {
			return nil, fmt.Errorf("%s=%d is out of range 0..%d", c.name, c.v, c.maxVal)
		}
	}
	v6 := f.src.a.Is6()
	t, err := packet.ICMPType(typ, v6)
	if err != nil {
		return nil, err
	}
	proto := uint8(packet.ProtoICMP)
	if v6 {
		proto = packet.ProtoICMPv6
	}
	return f.build(packet.Packet{Proto: proto, ICMPType: t, ICMPCode: uint8(code), ID: uint16(id), Seq: uint16(seq)})
}

func packetFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var data payloadArg
	if err := unpackArgs(b, args, kwargs, "data", &data); err != nil {
		return nil, err
	}
	return newPacket([]byte(data)), nil
}

func ethFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	src, dst := macArg(packet.DefaultEthSrc), macArg(packet.DefaultEthDst)
	if err := unpackArgs(b, args, kwargs, "src??", &src, "dst??", &dst); err != nil {
		return nil, err
	}
	return starlarkstruct.FromStringDict(starlark.String("eth"), starlark.StringDict{
		"src": starlark.String(net.HardwareAddr(src).String()),
		"dst": starlark.String(net.HardwareAddr(dst).String()),
	}), nil
}

// payloadArg is bytes, given as bytes or a string.
type payloadArg string

func (a *payloadArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.Bytes:
		*a = payloadArg(x)
	case starlark.String:
		*a = payloadArg(x)
	default:
		return badParam("%s must be bytes or a string, not %s", describeValue(v))
	}
	return nil
}

// macArg is an Ethernet address, "02:00:00:00:00:01".
type macArg net.HardwareAddr

func (a *macArg) Unpack(v starlark.Value) error {
	s, err := unpackString(v)
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return badParam("%s=%q is not an Ethernet address like \"02:00:00:00:00:01\"", s)
	}
	*a = macArg(mac)
	return nil
}

// ethArg is the Ethernet header eth() describes; nil addresses mean the
// defaults.
type ethArg struct{ src, dst net.HardwareAddr }

func (a *ethArg) Unpack(v starlark.Value) error {
	s, ok := v.(*starlarkstruct.Struct)
	if !ok || s.Constructor() != starlark.String("eth") {
		return badParam("%s must be an Ethernet header from eth(src=, dst=), not %s", describeValue(v))
	}
	for _, f := range []struct {
		name string
		to   *net.HardwareAddr
	}{{"src", &a.src}, {"dst", &a.dst}} {
		x, _ := s.Attr(f.name)
		var m macArg
		if err := m.Unpack(x); err != nil {
			return err
		}
		*f.to = net.HardwareAddr(m)
	}
	return nil
}

// vlanArg is an 802.1Q VLAN ID, 0..4095.
type vlanArg struct {
	id  uint16
	set bool
}

func (a *vlanArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	n, ok2 := i.Int64()
	if !ok || !ok2 || n < 0 || n > 4095 {
		return badParam("%s=%s is not a VLAN ID 0..4095", v)
	}
	a.id, a.set = uint16(n), true
	return nil
}
