package builtins

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
)

// Capture is what capture() returns.
type Capture struct {
	object
	c     *datapath.Capture
	links []starlark.Value // *Link, or the name of a host device
	pcap  string           // as the script gave it
}

func (c *Capture) String() string {
	var names []string
	for _, v := range c.links {
		names = append(names, v.String())
	}
	return fmt.Sprintf("capture(%s)", strings.Join(names, ", "))
}
func (c *Capture) Type() string          { return "capture" }
func (c *Capture) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: capture") }
func (c *Capture) AttrNames() []string {
	return []string{"count", "link", "links", "packets", "pcap", "stop"}
}
func (c *Capture) Attr(name string) (starlark.Value, error) {
	switch name {
	case "link":
		return c.links[0], nil
	case "links":
		return starlark.NewList(slices.Clone(c.links)), nil
	case "pcap":
		if c.pcap == "" {
			return starlark.None, nil
		}
		return starlark.String(c.pcap), nil
	case "count":
		return newMethod(c, "count", c.count), nil
	case "packets":
		return newMethod(c, "packets", c.packetsMethod), nil
	case "stop":
		return stopMethod(c, c.c.Close), nil
	}
	return nil, nil
}

var captureProtos = []string{"arp", "icmp", "icmp6", "tcp", "udp"}

// packetFilter is what capture.count() and capture.packets() select:
// packets matching every field set.
type packetFilter struct {
	proto     string
	src, dst  addrArg
	direction string
	port      portArg
}

// unpack reads the filter's keyword arguments, then more pairs.
func (f *packetFilter) unpack(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, more ...any) error {
	f.src, f.dst = addrArg{orEmpty: true}, addrArg{orEmpty: true}
	pairs := append([]any{"proto?", &f.proto, "src?", &f.src, "dst?", &f.dst, "direction?", &f.direction, "port?", &f.port}, more...)
	if err := unpackArgs(b, args, kwargs, pairs...); err != nil {
		return err
	}
	if f.proto != "" && !slices.Contains(captureProtos, f.proto) {
		return fmt.Errorf("proto %q is not one of %s", f.proto, quote.Or(captureProtos))
	}
	switch f.direction {
	case "", "in", "out":
	default:
		return fmt.Errorf("direction %q is not \"in\" or \"out\"", f.direction)
	}
	return nil
}

func (f *packetFilter) matches(p datapath.Packet) bool {
	switch {
	case f.proto != "" && p.Proto != f.proto,
		f.src.a.IsValid() && p.Src != f.src.a,
		f.dst.a.IsValid() && p.Dst != f.dst.a,
		f.direction == "in" && p.Outgoing,
		f.direction == "out" && !p.Outgoing,
		f.port != 0 && portArg(p.Sport) != f.port && portArg(p.Dport) != f.port:
		return false
	}
	return true
}

// selected waits for packets in flight, then returns those f matches.
func (c *Capture) selected(f *packetFilter) []datapath.Packet {
	// Packets just sent may still be on their way to the socket.
	c.c.Settle(20*time.Millisecond, 500*time.Millisecond)
	var ps []datapath.Packet
	for _, p := range c.c.Packets() {
		if f.matches(p) {
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *Capture) count(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f packetFilter
	if err := f.unpack(b, args, kwargs); err != nil {
		return nil, err
	}
	return starlark.MakeInt(len(c.selected(&f))), nil
}

func (c *Capture) packetsMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f packetFilter
	var quiet, exact bool
	if err := f.unpack(b, args, kwargs, "exact?", &exact, "quiet?", &quiet); err != nil {
		return nil, err
	}
	ps := c.selected(&f)
	var start time.Time
	if len(ps) > 0 {
		start = ps[0].Time
	}
	out := make([]starlark.Value, len(ps))
	for i, p := range ps {
		v := &CapturedPacket{p: p, exact: exact, start: start}
		out[i] = v
		if !quiet {
			fmt.Fprintln(runOf(thread).out, v.String())
		}
	}
	return starlark.NewList(out), nil
}

// captureLinksArg is what capture() captures on: a link, the name of a
// device of the host the lab did not create, or a list of them.
type captureLinksArg struct {
	links []starlark.Value
	spec  datapath.CaptureSpec
}

func (a *captureLinksArg) Unpack(v starlark.Value) error {
	items := []starlark.Value{v}
	if seq, ok := v.(starlark.Indexable); ok && v.Type() != "string" {
		items = items[:0]
		for i := range seq.Len() {
			items = append(items, seq.Index(i))
		}
		if len(items) == 0 {
			return badParam("%s is an empty list; give at least one link")
		}
	}
	for _, it := range items {
		switch it := it.(type) {
		case *Link:
			a.spec.Links = append(a.spec.Links, it.l)
		case starlark.String:
			a.spec.HostDevices = append(a.spec.HostDevices, string(it))
		default:
			return badParam("%s must be a link (a pair end such as p.peer, or ns.lo), the name of a host device such as \"eth0\", or a list of them; not %s", describeValue(it))
		}
		a.links = append(a.links, it)
	}
	return nil
}

func captureFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var links captureLinksArg
	var pcap string
	if err := unpackArgs(b, args, kwargs, "links", &links, "pcap?", &pcap); err != nil {
		return nil, err
	}
	if pcap != "" {
		path := pcap
		if !filepath.IsAbs(path) {
			path = filepath.Join(callerDir(thread), path)
		}
		if !r.allowed(filepath.Dir(path)) {
			return nil, fmt.Errorf("pcap=%q: %s is outside the script's directory; write under it, or allow the directory with --allow-path", pcap, filepath.Dir(path))
		}
		links.spec.Pcap = path
	}
	c, err := r.lab.Capture(links.spec)
	if err != nil {
		return nil, err
	}
	return &Capture{c: c, links: links.links, pcap: pcap}, nil
}

// CapturedPacket is one packet of capture.packets().
type CapturedPacket struct {
	object
	p     datapath.Packet
	exact bool      // real port numbers and times in String
	start time.Time // the first listed packet's time
}

// capturedPacketAttrs are the attributes of a captured packet.
var capturedPacketAttrs = []Attr{
	{"dev", `the device, "ns/dev"`},
	{"direction", `"in" (received) or "out" (transmitted)`},
	{"dport", "the TCP or UDP destination port, or 0"},
	{"dst", "the destination IP address, or None"},
	{"flags", `the TCP flags as tcpdump writes them ("S", "S.", "P.", "F.", "R"), or ""`},
	{"icmp_type", "the ICMP or ICMPv6 type, or None"},
	{"len", "the length from the network header on"},
	{"proto", `"tcp", "udp", "icmp", "icmp6", "arp" or a protocol number`},
	{"sport", "the TCP or UDP source port, or 0"},
	{"src", "the source IP address, or None"},
	{"time", "seconds since the first packet listed"},
}

func (v *CapturedPacket) Type() string          { return "captured_packet" }
func (v *CapturedPacket) Hash() (uint32, error) { return starlark.String(v.String()).Hash() }
func (v *CapturedPacket) AttrNames() []string {
	names := make([]string, len(capturedPacketAttrs))
	for i, a := range capturedPacketAttrs {
		names[i] = a.Name
	}
	return names
}

func (v *CapturedPacket) Attr(name string) (starlark.Value, error) {
	p := v.p
	addr := func(a fmt.Stringer, ok bool) starlark.Value {
		if !ok {
			return starlark.None
		}
		return starlark.String(a.String())
	}
	switch name {
	case "dev":
		return starlark.String(p.Dev), nil
	case "direction":
		return starlark.String(map[bool]string{true: "out", false: "in"}[p.Outgoing]), nil
	case "dport":
		return starlark.MakeInt(int(p.Dport)), nil
	case "sport":
		return starlark.MakeInt(int(p.Sport)), nil
	case "dst":
		return addr(p.Dst, p.Dst.IsValid()), nil
	case "src":
		return addr(p.Src, p.Src.IsValid()), nil
	case "flags":
		if p.Proto != "tcp" {
			return starlark.String(""), nil
		}
		return starlark.String(p.TCPFlags()), nil
	case "icmp_type":
		if p.Proto != "icmp" && p.Proto != "icmp6" {
			return starlark.None, nil
		}
		return starlark.MakeInt(int(p.ICMPType)), nil
	case "len":
		return starlark.MakeInt(p.Len), nil
	case "proto":
		return starlark.String(p.Proto), nil
	case "time":
		return starlark.Float(p.Time.Sub(v.start).Seconds()), nil
	}
	return nil, nil
}

// Ephemeral ports, Linux's default net.ipv4.ip_local_port_range: the
// ports a client's connection is given, different in every run.
const ephemeralLow, ephemeralHigh = 32768, 60999

// String is the packet as a line like tcpdump's: without times, and with
// ports of the ephemeral range as "ephemeral", unless exact=True.
func (v *CapturedPacket) String() string {
	p := v.p
	var b strings.Builder
	if v.exact {
		fmt.Fprintf(&b, "%.6f ", p.Time.Sub(v.start).Seconds())
	}
	dir := "In "
	if p.Outgoing {
		dir = "Out"
	}
	fmt.Fprintf(&b, "%s %s ", p.Dev, dir)
	if !p.Src.IsValid() {
		if p.Proto == "arp" {
			b.WriteString("ARP")
		} else {
			fmt.Fprintf(&b, "ethertype %s", p.Proto)
		}
		return b.String()
	}
	ip := "IP"
	if p.Src.Is6() {
		ip = "IP6"
	}
	switch p.Proto {
	case "tcp", "udp":
		fmt.Fprintf(&b, "%s %s.%s > %s.%s: ", ip, p.Src, v.port(p.Sport), p.Dst, v.port(p.Dport))
		if p.Proto == "tcp" {
			fmt.Fprintf(&b, "Flags [%s]", p.TCPFlags())
		} else {
			b.WriteString("UDP")
		}
	case "icmp", "icmp6":
		fmt.Fprintf(&b, "%s %s > %s: %s", ip, p.Src, p.Dst, icmpName(p))
	default:
		fmt.Fprintf(&b, "%s %s > %s: ip-proto-%s", ip, p.Src, p.Dst, p.Proto)
	}
	return b.String()
}

func (v *CapturedPacket) port(n uint16) string {
	if !v.exact && n >= ephemeralLow && n <= ephemeralHigh {
		return "ephemeral"
	}
	return fmt.Sprint(n)
}

// icmpName names an ICMP or ICMPv6 message as tcpdump does.
func icmpName(p datapath.Packet) string {
	names := map[uint8]string{0: "echo reply", 8: "echo request", 3: "unreachable", 11: "time exceeded"}
	prefix := "ICMP"
	if p.Proto == "icmp6" {
		names = map[uint8]string{128: "echo request", 129: "echo reply", 1: "unreachable", 3: "time exceeded",
			133: "router solicitation", 134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement"}
		prefix = "ICMP6,"
	}
	if n, ok := names[p.ICMPType]; ok {
		return prefix + " " + n
	}
	return fmt.Sprintf("%s type %d code %d", prefix, p.ICMPType, p.ICMPCode)
}
