package builtins

import (
	"fmt"
	"net/netip"
	"slices"
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

// Capture is what capture() returns.
type Capture struct {
	object
	c    *datapath.Capture
	link *Link
}

func (c *Capture) String() string        { return fmt.Sprintf("capture(%s)", c.link) }
func (c *Capture) Type() string          { return "capture" }
func (c *Capture) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: capture") }
func (c *Capture) AttrNames() []string   { return []string{"count", "link", "stop"} }
func (c *Capture) Attr(name string) (starlark.Value, error) {
	switch name {
	case "link":
		return c.link, nil
	case "count":
		return newMethod(c, "count", c.count), nil
	case "stop":
		return stopMethod(c, c.c.Close), nil
	}
	return nil, nil
}

var captureProtos = []string{"arp", "icmp", "icmp6", "tcp", "udp"}

// packetFilter is what capture.count() counts: packets matching every
// field set.
type packetFilter struct {
	proto     string
	src, dst  addrArg
	direction string
}

func (c *Capture) count(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	f := packetFilter{src: addrArg{orEmpty: true}, dst: addrArg{orEmpty: true}}
	if err := unpackArgs(b, args, kwargs, "proto?", &f.proto, "src?", &f.src, "dst?", &f.dst, "direction?", &f.direction); err != nil {
		return nil, err
	}
	if f.proto != "" && !slices.Contains(captureProtos, f.proto) {
		return nil, fmt.Errorf("proto %q is not one of %s", f.proto, quote.Or(captureProtos))
	}
	switch f.direction {
	case "", "in", "out":
	default:
		return nil, fmt.Errorf("direction %q is not \"in\" or \"out\"", f.direction)
	}
	// Packets just sent may still be on their way to the socket.
	c.c.Settle(20*time.Millisecond, 500*time.Millisecond)
	n := 0
	for _, p := range c.c.Packets() {
		if f.matches(p) {
			n++
		}
	}
	return starlark.MakeInt(n), nil
}

func (f *packetFilter) matches(p datapath.Packet) bool {
	switch {
	case f.proto != "" && p.Proto != f.proto,
		f.src.a.IsValid() && p.Src != f.src.a,
		f.dst.a.IsValid() && p.Dst != f.dst.a,
		f.direction == "in" && p.Outgoing,
		f.direction == "out" && !p.Outgoing:
		return false
	}
	return true
}

func captureFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	link := linkArg{what: "a link (a pair end such as p.peer, or ns.lo)"}
	if err := unpackArgs(b, args, kwargs, "link", &link); err != nil {
		return nil, err
	}
	c, err := r.lab.Capture(link.v.l)
	if err != nil {
		return nil, err
	}
	return &Capture{c: c, link: link.v}, nil
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
		Signature: `capture(link) -> capture`,
		Doc: "Records the packets a device receives and transmits from now on, like `tcpdump -i`, " +
			"through a packet socket in the device's namespace; `count()` tells how many matched. " +
			"Only addresses and protocols are kept, never payloads.",
		Attrs: []Attr{
			{"count", `method: count(proto=None, src=None, dst=None, direction=None) counts matching packets`},
			{"link", "the link captured on"},
			{"stop", "method: stop() ends the capture"},
		},
		Example: `seen = capture(monitor.peer)
ping("10.0.2.2", src = ns1, count = 5)
print(seen.count(proto = "icmp", dst = "10.0.2.2"))`,
	},
	{
		Name: "capture.count", Kind: KindMethod,
		Signature: `capture.count(proto=None, src=None, dst=None, direction=None) -> int`,
		Doc: "Counts the packets recorded so far that match every filter given: `proto` one of " +
			"\"arp\", \"icmp\", \"icmp6\", \"tcp\", \"udp\"; `src`/`dst` an IP address; `direction` " +
			"\"in\" (received) or \"out\" (transmitted). It first waits until no packet has " +
			"arrived for 20ms (at most 0.5s), so packets still in flight are counted.",
		Example: `n = seen.count(proto = "icmp", direction = "in")`,
	},
	{
		Name: "capture.stop", Kind: KindMethod,
		Signature: `capture.stop() -> None`,
		Doc:       "Ends the capture; count() keeps working on what was recorded.",
		Example:   `seen.stop()`,
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

// serverAttrs are the attributes of what serve() returns.
var serverAttrs = []Attr{
	{"ns", "the namespace it runs in"},
	{"port", "the port"},
	{"proto", `"tcp" or "udp"`},
	{"served", "the number of connections or datagrams answered so far"},
	{"stop", "method: stop() closes the server"},
}
