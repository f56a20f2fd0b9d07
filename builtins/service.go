package builtins

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
)

// Services and captures: serve() answers connections with a fixed reply,
// connect() reads it, capture() counts what a device sees. Together they
// show which backend answered and what a monitor received.

// Server is what serve() returns.
type Server struct {
	object
	s   *datapath.Server
	run *Run
}

func (s *Server) String() string {
	return fmt.Sprintf("server(%s, %d, proto=%q)", s.run.wrapNetns(s.s.Netns()), s.s.Port(), s.s.Proto())
}
func (s *Server) Type() string          { return "server" }
func (s *Server) Hash() (uint32, error) { return starlark.String(s.String()).Hash() }
func (s *Server) AttrNames() []string   { return []string{"ns", "port", "proto", "served", "stop"} }
func (s *Server) Attr(name string) (starlark.Value, error) {
	switch name {
	case "ns":
		return s.run.wrapNetns(s.s.Netns()), nil
	case "port":
		return starlark.MakeInt(s.s.Port()), nil
	case "proto":
		return starlark.String(s.s.Proto()), nil
	case "served":
		return starlark.MakeInt(s.s.Served()), nil
	case "stop":
		return stopMethod(s, s.s.Close), nil
	}
	return nil, nil
}

// stopMethod is the stop() method of recv: it takes no arguments and
// calls stop.
func stopMethod(recv starlark.Value, stop func() error) *starlark.Builtin {
	return newPlainMethod(recv, "stop", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		return starlark.None, stop()
	})
}

// protoArg is "tcp" or "udp".
type protoArg string

func (a *protoArg) Unpack(v starlark.Value) error {
	s, err := unpackString(v)
	if err != nil {
		return err
	}
	if s != "tcp" && s != "udp" {
		return badArg("proto %q is not supported; use %s", s, quote.Or([]string{"tcp", "udp"}))
	}
	*a = protoArg(s)
	return nil
}

func serveFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var nsArg netnsArg
	var port portArg
	proto := protoArg("tcp")
	var reply starlark.Value = starlark.None
	if err := unpackArgs(b, args, kwargs, "ns", &nsArg, "port", &port, "proto?", &proto, "reply?", &reply); err != nil {
		return nil, err
	}
	ns := nsArg.ns
	text := ns.String()
	if !ns.isHost {
		text = ns.ns.Name()
	}
	switch v := reply.(type) {
	case starlark.NoneType:
	case starlark.String:
		if v == "" {
			return nil, fmt.Errorf("reply must not be empty")
		}
		text = string(v)
	default:
		return nil, fmt.Errorf("reply must be a string, not %s", describeValue(reply))
	}
	s, err := r.lab.Serve(ns.ns, string(proto), int(port), text)
	if err != nil {
		return nil, err
	}
	return &Server{s: s, run: r}, nil
}

// ConnectResult is what connect() returns.
type ConnectResult struct {
	object
	proto string
	src   *Netns
	dst   netip.AddrPort
	res   datapath.ConnectResult
}

func (c *ConnectResult) String() string {
	if c.res.Reason != "" {
		return fmt.Sprintf("connect(%s %s -> %s: %s)", c.proto, c.src, c.dst, c.res.Reason)
	}
	return fmt.Sprintf("connect(%s %s -> %s: reply %s)", c.proto, c.src, c.dst, strconv.Quote(c.res.Reply))
}
func (c *ConnectResult) Type() string          { return "connect_result" }
func (c *ConnectResult) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: connect_result") }
func (c *ConnectResult) Truth() starlark.Bool  { return starlark.Bool(c.res.Reason == "") }
func (c *ConnectResult) AttrNames() []string   { return []string{"ok", "reason", "reply"} }
func (c *ConnectResult) Attr(name string) (starlark.Value, error) {
	switch name {
	case "ok":
		return c.Truth(), nil
	case "reply":
		if c.res.Reason != "" {
			return starlark.None, nil
		}
		return starlark.String(c.res.Reply), nil
	case "reason":
		return starlark.String(c.res.Reason), nil
	}
	return nil, nil
}

func connectFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var dst addrArg
	var port portArg
	var srcArg netnsArg
	proto := protoArg("tcp")
	timeout := durationArg(time.Second)
	if err := unpackArgs(b, args, kwargs, "dst", &dst, "port", &port, "src??", &srcArg, "proto?", &proto, "timeout??", &timeout); err != nil {
		return nil, err
	}
	src := srcArg.or(r.host)
	if err := r.lab.WaitReadyFor(r.ctxOf(thread), r.ready, dst.a.Is6()); err != nil {
		return nil, err
	}
	ap := netip.AddrPortFrom(dst.a, uint16(port))
	res, err := r.lab.Connect(r.ctxOf(thread), src.ns, string(proto), ap, time.Duration(timeout))
	if err != nil {
		return nil, err
	}
	return &ConnectResult{proto: string(proto), src: src, dst: ap, res: res}, nil
}

// loopback returns the lo link of a namespace the script created.
func (n *Netns) loopback(r *Run) (starlark.Value, error) {
	k, err := r.lab.Loopback(n.ns)
	if err != nil {
		return nil, err
	}
	if v, ok := r.links[k]; ok {
		return v, nil
	}
	v := &Link{l: k, run: r}
	r.links[k] = v
	return v, nil
}

// serviceDocs documents serve(), connect() and capture().
var serviceDocs = []Entry{
	{
		Name: "serve", Kind: KindFunc,
		Signature: `serve(ns, port, proto="tcp", reply=None) -> server`,
		Doc: "Starts a server in `ns` on `port` (every address, IPv4 and IPv6) that answers each " +
			"TCP connection, or each UDP datagram, with `reply` — by default the namespace's name — " +
			"until the script ends or `stop()`. With connect() it shows which of several backends " +
			"holding the same address answered.",
		Attrs: serverAttrs,
		Example: `for b in backends:
    serve(b, 8080)`,
	},
	{
		Name: "server.stop", Kind: KindMethod,
		Signature: `server.stop() -> None`,
		Doc:       "Closes the server; connections to its port are refused from then on.",
		Example: `web = serve(task, 80)
web.stop()`,
	},
	{
		Name: "connect", Kind: KindFunc,
		Signature: `connect(dst, port, src=host, proto="tcp", timeout="1s") -> connect_result`,
		Doc: "Connects from `src` to `dst`:`port` (or sends one UDP datagram) and reads the " +
			"reply of a serve() server, within `timeout`. A connection that fails is not an " +
			"error: the result is false and says why.",
		Attrs: []Attr{
			{"ok", "a reply arrived"},
			{"reason", "why no reply arrived, or \"\""},
			{"reply", "the server's reply, or None"},
		},
		Example: `r = connect("192.168.100.5", 8080, src = client)
print(r.reply if r else r.reason)`,
	},
	{
		Name: "capture", Kind: KindFunc,
		Signature: `capture(links, pcap=None) -> capture`,
		Doc: "Records the packets devices receive and transmit from now on, like `tcpdump -i`, " +
			"through a packet socket per device in the device's namespace. `links` is a link, the " +
			"name of a device of the host that the lab did not create (\"eth0\": only read), or a " +
			"list of them. `count()` tells how many packets matched, `packets()` lists them; only " +
			"addresses, ports, TCP flags and protocols are kept in memory, never payloads. With " +
			"`pcap` it also writes every packet in full to a pcapng file (tcpdump, tshark and " +
			"Wireshark read it): one interface per device, named \"ns/dev\", all on one timeline. " +
			"The path is relative to the script's directory and must lie under the main script's " +
			"directory or an `--allow-path` directory; the file is complete when the capture stops.",
		Attrs: captureAttrs,
		Example: `seen = capture([monitor.peer, monitor.primary], pcap = "monitor.pcapng")
ping("10.0.2.2", src = ns1, count = 5)
print(seen.count(proto = "icmp", dst = "10.0.2.2"))`,
	},
	{
		Name: "capture.count", Kind: KindMethod,
		Signature: `capture.count(proto=None, src=None, dst=None, direction=None, port=None) -> int`,
		Doc: "Counts the packets recorded so far that match every filter given: `proto` one of " +
			"\"arp\", \"icmp\", \"icmp6\", \"tcp\", \"udp\"; `src`/`dst` an IP address; `direction` " +
			"\"in\" (received) or \"out\" (transmitted); `port` a TCP or UDP port, source or " +
			"destination. It first waits until no packet has arrived for 20ms (at most 0.5s), so " +
			"packets still in flight are counted.",
		Example: `n = seen.count(proto = "tcp", port = 8080, direction = "in")`,
	},
	{
		Name: "capture.packets", Kind: KindMethod,
		Signature: `capture.packets(proto=None, src=None, dst=None, direction=None, port=None, exact=False, quiet=False) -> list`,
		Doc: "Returns the packets recorded so far that match the filters of `count()`, as " +
			"captured_packet values in arrival order, and prints each on a line as tcpdump does, " +
			"e.g. `ns1/v1 In  IP 10.0.0.1.ephemeral > 10.0.0.2.8080: Flags [S]`. The lines stay the " +
			"same from run to run, for golden files: no times, and ports of Linux's ephemeral range " +
			"(32768-60999) written \"ephemeral\"; `exact = True` adds the seconds since the first " +
			"packet listed and writes every port. `quiet = True` prints nothing.",
		Example: `for p in seen.packets(proto = "tcp", quiet = True):
    print(p.dev, p.flags)`,
	},
	{
		Name: "capture.stop", Kind: KindMethod,
		Signature: `capture.stop() -> None`,
		Doc:       "Ends the capture and completes its pcapng file; count() and packets() keep working on what was recorded.",
		Example:   `seen.stop()`,
	},
	{
		Name: "captured_packet", Kind: KindType,
		Signature: `captured_packet`,
		Doc:       "One packet of `capture.packets()`; `str()` is its tcpdump-style line.",
		Attrs:     capturedPacketAttrs,
		Example: `p = seen.packets(quiet = True)[0]
print(p.src, p.sport, p.dst, p.dport, p.flags)`,
	},
	{
		Name: "server", Kind: KindType,
		Signature: `server`,
		Doc:       "What serve() returns; stopped when the script ends.",
		Attrs:     serverAttrs,
		Example: `web = serve(task, 80)
print(web.served)`,
	},
	{
		Name: "connect_result", Kind: KindType,
		Signature: `connect_result`,
		Doc:       "What connect() returns: true when a reply arrived.",
		Attrs: []Attr{
			{"ok", "a reply arrived"},
			{"reason", "why no reply arrived, or \"\""},
			{"reply", "the server's reply, or None"},
		},
		Example: `if not connect("10.0.0.2", 80):
    fail("no answer")`,
	},
}

// captureAttrs are the attributes of what capture() returns.
var captureAttrs = []Attr{
	{"count", `method: count(proto=None, src=None, dst=None, direction=None, port=None) counts matching packets`},
	{"link", "the first link captured on"},
	{"links", "the links captured on, as given"},
	{"packets", "method: packets(proto=None, src=None, dst=None, direction=None, port=None, exact=False, quiet=False) lists matching packets"},
	{"pcap", "the pcapng file written, as given, or None"},
	{"stop", "method: stop() ends the capture"},
}

// serverAttrs are the attributes of what serve() returns.
var serverAttrs = []Attr{
	{"ns", "the namespace it runs in"},
	{"port", "the port"},
	{"proto", `"tcp" or "udp"`},
	{"served", "the number of connections or datagrams answered so far"},
	{"stop", "method: stop() closes the server"},
}
