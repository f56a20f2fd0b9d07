package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// RunResult is what prog.run() returns: the verdict of one program on
// one packet, and the packet as the program left it.
type RunResult struct {
	object
	res datapath.RunResult
	out *Packet
}

var _ starlark.HasAttrs = (*RunResult)(nil)

func (r *RunResult) String() string {
	if r.out == nil {
		return "run_result()"
	}
	return fmt.Sprintf("run_result(%s, %s)", r.res.Verdict, r.out)
}
func (r *RunResult) Type() string          { return "run_result" }
func (r *RunResult) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: run_result") }
func (r *RunResult) AttrNames() []string   { return []string{"code", "ns_per_run", "packet", "verdict"} }
func (r *RunResult) Attr(name string) (starlark.Value, error) {
	switch name {
	case "verdict":
		return starlark.String(r.res.Verdict), nil
	case "code":
		return starlark.MakeInt(int(r.res.Code)), nil
	case "packet":
		if r.out == nil {
			return starlark.None, nil
		}
		return r.out, nil
	case "ns_per_run":
		return starlark.MakeInt64(r.res.PerRun.Nanoseconds()), nil
	}
	return nil, nil
}

// progRun is prog.run(pkt, repeat=1).
func progRun(p *Program) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var pkt packetArg
		repeat := 1
		if err := unpackArgs(b, args, kwargs, "pkt", &pkt, "repeat?", &repeat); err != nil {
			return nil, err
		}
		res, err := runOf(thread).lab.RunProgram(p.p, pkt, repeat)
		if err != nil {
			return nil, err
		}
		return &RunResult{res: res, out: newPacket(res.Out)}, nil
	}
}

// packetArg is a frame: a packet value, or bytes.
type packetArg []byte

func (a *packetArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case *Packet:
		*a = x.p.Raw
	case starlark.Bytes:
		*a = []byte(x)
	default:
		return badParam("%s must be a packet (from tcp(), udp(), icmp() or packet()) or bytes, not %s", describeValue(v))
	}
	return nil
}

// packetDocs documents the packet builders and prog.run.
var packetDocs = []Entry{
	{
		Name: "tcp", Kind: KindFunc,
		Signature: `tcp(src, dst, sport=40000, dport=80, flags="S", payload="", ttl=64, eth=None, vlan=None) -> packet`,
		Doc: "Builds a TCP segment in an Ethernet frame, for prog.run(): IPv4 or IPv6 by the " +
			"addresses, every length and checksum filled in. `flags` are letters: F, S, R, P, U, E, " +
			"W and A (or .) for ACK. `payload` is bytes or a string. The Ethernet header is " +
			"eth()'s defaults unless `eth` is given; `vlan` (0..4095) adds an 802.1Q tag. " +
			"Returns a packet.",
		Example: `syn = tcp("10.0.0.1", "10.0.0.2", dport = 12345)
ack = tcp("fd00::1", "fd00::2", sport = 80, dport = 40000, flags = "SA", payload = "hi")`,
	},
	{
		Name: "udp", Kind: KindFunc,
		Signature: `udp(src, dst, sport=40000, dport=53, payload="", ttl=64, eth=None, vlan=None) -> packet`,
		Doc:       "Builds a UDP datagram in an Ethernet frame, as tcp() does a segment. Returns a packet.",
		Example:   `q = udp("10.0.0.1", "10.0.0.2", dport = 53, payload = b"\x00\x01", vlan = 7)`,
	},
	{
		Name: "icmp", Kind: KindFunc,
		Signature: `icmp(src, dst, type="echo-request", code=0, id=1, seq=1, payload="", ttl=64, eth=None, vlan=None) -> packet`,
		Doc: "Builds an ICMP message (ICMPv6 for IPv6 addresses) in an Ethernet frame. `type` is a " +
			"name: \"echo-request\", \"echo-reply\", \"unreachable\", \"time-exceeded\", and for " +
			"IPv6 also \"packet-too-big\", \"neighbor-solicitation\", \"neighbor-advertisement\". " +
			"`id` and `seq` are the echo's identifier and sequence number. Returns a packet.",
		Example: `ping6 = icmp("fd00::1", "fd00::2", seq = 3)`,
	},
	{
		Name: "eth", Kind: KindFunc,
		Signature: `eth(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") -> eth`,
		Doc: "An Ethernet header's addresses, for the `eth` parameter of tcp(), udp() and icmp(). " +
			"The EtherType follows from the packet.",
		Attrs: []Attr{
			{"dst", "the destination address"},
			{"src", "the source address"},
		},
		Example: `syn = tcp("10.0.0.1", "10.0.0.2", eth = eth(dst = "aa:bb:cc:dd:ee:ff"))`,
	},
	{
		Name: "packet", Kind: KindFunc,
		Signature: `packet(data) -> packet`,
		Doc: "A packet from raw bytes: an Ethernet frame, as tc and XDP programs see them. A packet, " +
			"whichever builtin made it, prints as one tcpdump-style line (`tcp 10.0.0.1:40000 > " +
			"10.0.0.2:12345 [S] len 0`, with `[truncated]` or `[bad checksum]` where so) and " +
			"compares equal to a packet of the same bytes. Fields a packet does not have are None.",
		Attrs: []Attr{
			{"bytes", "the whole frame, as bytes"},
			{"checksum_ok", "whether the IPv4 header and TCP, UDP or ICMP checksums are right"},
			{"dport", "the TCP or UDP destination port"},
			{"dst", "the destination IP address"},
			{"eth_dst", "the Ethernet destination address"},
			{"eth_src", "the Ethernet source address"},
			{"flags", `the TCP flags, as tcpdump writes them: "S", "S." (SYN-ACK), "P.", "none"`},
			{"icmp_type", `the ICMP type's name, like "echo-request"`},
			{"id", "the ICMP echo identifier"},
			{"len", "the length of the payload"},
			{"payload", "what follows the transport header, as bytes"},
			{"proto", `"tcp", "udp", "icmp", "icmp6", or the IP protocol number`},
			{"seq", "the ICMP echo sequence number"},
			{"sport", "the TCP or UDP source port"},
			{"src", "the source IP address"},
			{"ttl", "the IPv4 TTL or IPv6 hop limit"},
			{"vlan", "the 802.1Q VLAN ID"},
		},
		Example: `p = packet(tcp("10.0.0.1", "10.0.0.2").bytes)
print(p, p.dport, p.flags)`,
	},
	{
		Name: "program.run", Kind: KindMethod,
		Signature: `program.run(pkt, repeat=1) -> run_result`,
		Doc: "Runs the program on a packet (a packet value or bytes of an Ethernet frame) in the " +
			"kernel with BPF_PROG_TEST_RUN, `repeat` times: on the host, attached to nothing, so " +
			"netkit programs need no netkit device. The program's maps keep what the runs did, as " +
			"after real packets: read them with `prog.maps` and stats(). A REDIRECT verdict is " +
			"reported, not carried out (bpf_clone_redirect's copies are sent: the helper itself " +
			"sends them). A dry run or `nkscript graph` cannot run programs: it loads none.",
		Example: `drop = program("drop_port", port = 12345)
r = drop.run(tcp("10.0.0.1", "10.0.0.2", dport = 12345))
print(r.verdict)`,
	},
	{
		Name: "run_result", Kind: KindType,
		Signature: `run_result`,
		Doc: "What program.run() returns; it prints the verdict and the packet out, like " +
			"`run_result(DROP, tcp 10.0.0.1:40000 > 10.0.0.2:12345 [S] len 0)`. The verdict " +
			"is named as the program's hook names it: tc programs (for tcx and netkit) `NEXT`, " +
			"`PASS`, `DROP`, `REDIRECT`, or legacy tc's `UNSPEC`, `OK`, `SHOT`, ... when the " +
			"program is attached through legacy tc; XDP programs `XDP_ABORTED`, `XDP_DROP`, " +
			"`XDP_PASS`, `XDP_TX`, `XDP_REDIRECT`; a code the hook does not define is `CODE(n)`.",
		Attrs: []Attr{
			{"code", "the program's return value, an int (-1 for NEXT)"},
			{"ns_per_run", "nanoseconds per run, including the system call's share"},
			{"packet", "the packet as the program left it, a packet"},
			{"verdict", `the verdict's name, like "DROP" or "XDP_PASS"`},
		},
		Example: `r = prog.run(udp("10.0.0.1", "10.0.0.2"), repeat = 1000)
print(r.verdict, r.code, r.packet, r.ns_per_run)`,
	},
}
