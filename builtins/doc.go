package builtins

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Kind says what a documented name is.
type Kind int

// Kinds of Entry.
const (
	// KindFunc is a builtin function.
	KindFunc Kind = iota
	// KindValue is a predeclared value (host, argv).
	KindValue
	// KindType is a type of value that builtins return.
	KindType
	// KindMethod is a method of a value type, named "type.method".
	KindMethod
)

// Attr documents one attribute or method of a value.
type Attr struct {
	// Name is the attribute's name, without the dot.
	Name string
	// Doc says what it is, in one line.
	Doc string
}

// Entry documents one builtin, predeclared value, value type or method.
type Entry struct {
	// Name is what `nkscript doc NAME` looks up: "netkit_pair", "link",
	// "link.addr".
	Name string
	// Kind says what Name is.
	Kind Kind
	// Signature is how it is called, with every keyword the builtin
	// accepts and its default, and what it returns. For values and
	// types it is the name alone.
	Signature string
	// Doc is one paragraph of description.
	Doc string
	// Attrs are the attributes of the value the builtin returns (or of
	// the type), as AttrNames lists them.
	Attrs []Attr
	// Example is a short script fragment.
	Example string
}

// Docs is the builtin reference, in the order it is printed: the one
// source of `nkscript doc`, help() in the REPL and the README's
// reference section. Each area of builtins keeps its entries in its own
// file.
var Docs = slices.Concat(coreDocs, serviceDocs, topologyDocs, deviceDocs, attachDocs, mapDocs, policyDocs, packetDocs, uxDocs)

// coreDocs documents the foundation's builtins.
var coreDocs = []Entry{
	{
		Name: "netns", Kind: KindFunc,
		Signature: `netns(name) -> netns`,
		Doc: "Creates a named network namespace, visible to `ip netns exec NAME` while the script " +
			"runs, and deletes it when the script ends. A name that exists already is an error, never " +
			"adopted; `host` is reserved. Pass the returned value (not the name) wherever a namespace " +
			"is wanted: `peer_ns=`, `ns=`, `src=`.",
		Attrs: []Attr{
			{"delete", "method: delete() deletes the namespace now"},
			{"lo", "the namespace's loopback device, a link: give it addresses such as a service's virtual IP"},
			{"name", "the namespace's name"},
		},
		Example: `task = netns("task_netns")
print(task.name)`,
	},
	{
		Name: "netns.delete", Kind: KindMethod,
		Signature: `netns.delete()`,
		Doc: "Deletes the namespace before the script ends, as `ip netns del` does: the script's servers " +
			"and captures in it stop first, programs attached to its devices are detached, and pairs " +
			"with an end in it go with it. Only a namespace the script created can be deleted; the " +
			"namespace, and the links that went with it, cannot be used afterwards, and its name can " +
			"be given to netns() again.",
		Example: `isp = netns("isp")
isp.delete()`,
	},
	{
		Name: "host", Kind: KindValue,
		Signature: `host`,
		Doc: "The network namespace nkscript started in, a netns value. It is the default of every " +
			"`ns=`, `src=` and `primary_ns=` parameter; nkscript never deletes it, and sysctls it " +
			"changes there are restored when the script ends.",
		Attrs:   []Attr{{"name", `"host"`}},
		Example: `sysctl("net.ipv4.ip_forward", 1, ns = host)`,
	},
	{
		Name: "netkit_pair", Kind: KindFunc,
		Signature: `netkit_pair(primary, peer, mode="l3", primary_ns=host, peer_ns=None, policy="forward", peer_policy="forward", mtu=None, peer_mtu=None, scrub="default", peer_scrub="default", num_tx_queues=1, num_rx_queues=1, headroom=0, tailroom=0) -> netkit_pair`,
		Doc: "Creates a netkit pair, each end directly in its namespace (`peer_ns` defaults to " +
			"`primary_ns`). `mode` is `\"l3\"` or `\"l2\"`; `policy` and `peer_policy` are " +
			"`\"forward\"` or `\"blackhole\"`, the verdict when no program is attached; `mtu` " +
			"(both ends) and `peer_mtu` are 68..65535; `scrub` and `peer_scrub` (`\"default\"` " +
			"or `\"none\"`) say whether packets crossing to the primary, or to the peer, lose " +
			"their mark and priority; `num_tx_queues` and `num_rx_queues` set both ends' queues " +
			"(newer kernels, 7.3 among them, take one transmit queue only); " +
			"`headroom` and `tailroom` reserve bytes around packets (0..65535, Linux 6.14). " +
			"Each knob is checked against the running kernel first: one it lacks fails with " +
			"\"needs Linux ≥ X.Y (running A.B)\", one it refuses with \"the running kernel A.B " +
			"refuses it\". On a kernel without netkit the error names " +
			"CONFIG_NETKIT, the kernel version and `--vm`. Returns a pair (see `pair`).",
		Example: `task = netns("task_netns")
nk = netkit_pair("nk0", "task_nk", peer_ns = task)
nk.peer.addr("10.0.0.2/24").up()
nk.primary.addr("10.0.0.1/24").up()`,
	},
	{
		Name: "veth_pair", Kind: KindFunc,
		Signature: `veth_pair(primary, peer, primary_ns=host, peer_ns=None, mtu=None) -> veth_pair`,
		Doc: "Creates a veth pair, each end directly in its namespace (`peer_ns` defaults to " +
			"`primary_ns`); the same shape as netkit_pair, for kernels without netkit. Programs " +
			"attach to its ends with the tcx hooks `\"ingress\"` and `\"egress\"`. Returns a pair " +
			"(see `pair`).",
		Example: `task = netns("task_netns")
v = veth_pair("veth0", "task_veth", peer_ns = task, mtu = 1400)`,
	},
	{
		Name: "pair", Kind: KindType,
		Signature: `pair`,
		Doc: "What netkit_pair and veth_pair return (its type is `netkit_pair` or `veth_pair`): the two " +
			"ends as links. Give the pair itself to attach() for the netkit hooks `\"primary\"` and " +
			"`\"peer\"`.",
		Attrs: []Attr{
			{"kind", `"netkit" or "veth"`},
			{"mode", `the netkit mode, "l3" or "l2"; None for veth`},
			{"peer", "the peer end (a link)"},
			{"primary", "the primary end (a link)"},
		},
		Example: `nk = netkit_pair("nk0", "task_nk", peer_ns = task)
print(nk.kind, nk.primary.name, nk.peer.ns)`,
	},
	{
		Name: "link", Kind: KindType,
		Signature: `link`,
		Doc: "A network device: one end of a pair, a bridge, a vxlan, tun or vlan device, or a namespace's `lo`. `addr`, `up`, " +
			"`down` and `set` change it and return the link, so calls chain; the other attributes " +
			"describe it as it is now.",
		Attrs: []Attr{
			{"add_remote", "method: add_remote(ip) adds a remote VTEP to a vxlan link"},
			{"addr", "method: addr(cidr) adds an address"},
			{"addrs", `the addresses, like ["10.0.0.1/24"]`},
			{"delete", "method: delete() deletes the device now"},
			{"down", "method: down() sets the link down"},
			{"ifindex", "the interface index in its namespace"},
			{"kind", `"veth", "netkit", "bridge", "vxlan", "tun", "vlan" or "loopback"`},
			{"mac", "the MAC address; None for an l3 netkit device"},
			{"move", "method: move(ns) moves the device into another namespace"},
			{"mtu", "the MTU"},
			{"name", "the interface name"},
			{"ns", "the namespace it is in"},
			{"pair", "the pair it belongs to, or None"},
			{"set", "method: set(mtu=None, up=None, master=None, mac=None) changes the MTU, state, bridge or MAC"},
			{"up", "method: up() sets the link up"},
		},
		Example: `nk.peer.addr("10.0.0.2/24").up()
print(nk.peer.addrs, nk.peer.ifindex)`,
	},
	{
		Name: "link.addr", Kind: KindMethod,
		Signature: `link.addr(cidr) -> link`,
		Doc: "Adds an address with its prefix length, IPv4 or IPv6, like `\"10.0.0.1/24\"` or " +
			"`\"fd00::1/64\"`; the host bits stay, they are the link's address.",
		Example: `nk.primary.addr("10.0.0.1/24").addr("fd00::1/64").up()`,
	},
	{
		Name: "link.up", Kind: KindMethod,
		Signature: `link.up() -> link`,
		Doc: "Sets the link up. Traffic builtins wait until every link of the lab that is up is " +
			"operationally up, so first packets are not lost.",
		Example: `nk.peer.up()`,
	},
	{
		Name: "link.down", Kind: KindMethod,
		Signature: `link.down() -> link`,
		Doc:       "Sets the link down.",
		Example:   `nk.peer.down()`,
	},
	{
		Name: "link.delete", Kind: KindMethod,
		Signature: `link.delete()`,
		Doc: "Deletes the device before the script ends, as `ip link del` does; deleting either end " +
			"of a pair deletes both. Programs attached to it are detached first. The link (and the " +
			"other end of its pair) cannot be used afterwards.",
		Example: `uplink.primary.delete()`,
	},
	{
		Name: "link.move", Kind: KindMethod,
		Signature: `link.move(ns) -> link`,
		Doc: "Moves the device into the namespace `ns`, as `ip link set DEV netns NS` does. The kernel " +
			"moves it down and without addresses, so add them and set it up again there; programs " +
			"attached to it are detached first. A name that exists in `ns` already is an error, and " +
			"the link stays where it was. The link is cleaned up where it ends up.",
		Example: `v = veth_pair("v0", "v1")
v.primary.move(router).addr("10.0.0.1/24").up()`,
	},
	{
		Name: "route", Kind: KindFunc,
		Signature: `route(dst, via=None, dev=None, ns=host, table=None) -> route`,
		Doc: "Adds a route in `ns`. `dst` is a prefix like `\"10.1.0.0/24\"` or `\"fd00:1::/64\"`, " +
			"an address, or `\"default\"` (IPv4, or IPv6 when `via` is an IPv6 address; " +
			"`\"::/0\"` says IPv6 explicitly); give `via` (a gateway address on a connected network) " +
			"and/or `dev` (a link in `ns`). `table` is a routing table number (1..2^32-1) or " +
			"`\"main\"`, `\"local\"`, `\"default\"`; routes in a table are used where a rule() sends " +
			"packets to it. The route is removed when the script ends, or by its `remove()`.",
		Attrs: []Attr{
			{"dst", "the destination prefix"},
			{"via", "the gateway address, or None"},
			{"ns", "the namespace the route is in"},
			{"table", `the table: a number, or "main"`},
			{"remove", "method: remove() deletes the route now"},
		},
		Example: `route("default", via = "10.0.0.1", ns = task)
r = route("10.2.0.0/24", dev = nk.primary)
r.remove()`,
	},
	{
		Name: "rule", Kind: KindFunc,
		Signature: `rule(src=None, dst=None, iif=None, oif=None, fwmark=None, table, priority=None, ns=host) -> rule`,
		Doc: "Adds a routing policy rule in `ns` (`ip rule`): packets that match every selector given — " +
			"from the prefix `src`, to the prefix `dst` (an address means its /32 or /128), coming in by " +
			"the link `iif`, leaving by the link `oif`, carrying the firewall mark `fwmark` — are routed " +
			"by `table` (a number or `\"main\"`, `\"local\"`, `\"default\"`) instead of the main table. " +
			"The family is the prefixes' (IPv4 without any). `priority` orders the rules (lower first); " +
			"without it the kernel picks one. The rule is removed when the script ends, or by its `remove()`. " +
			"This is classic source-based policy routing: a table of its own plus a rule that selects it.",
		Attrs: []Attr{
			{"src", "the source prefix, or None"},
			{"dst", "the destination prefix, or None"},
			{"ns", "the namespace the rule is in"},
			{"table", "the table's number"},
			{"priority", "the priority given, or None"},
			{"remove", "method: remove() deletes the rule now"},
		},
		Example: `route("default", via = "10.0.2.1", table = 100)
rule(src = "10.0.1.0/24", table = 100, priority = 1000)`,
	},
	{
		Name: "sysctl", Kind: KindFunc,
		Signature: `sysctl(key, value, ns=host) -> None`,
		Doc: "Sets a network (`net.*`) sysctl in a namespace; `value` is a string, an int or a bool. A host sysctl is " +
			"restored when the script ends, unless something else changed it since.",
		Example: `sysctl("net.ipv4.conf.all.rp_filter", 0, ns = task)`,
	},
	{
		Name: "forwarding", Kind: KindFunc,
		Signature: `forwarding(ns=host) -> None`,
		Doc:       "Turns IPv4 and IPv6 forwarding on in a namespace (IPv6 only where it is enabled).",
		Example:   `forwarding(ns = router)`,
	},
	{
		Name: "program", Kind: KindFunc,
		Signature: `program(name, section=None, cflags=[], **consts) -> program`,
		Doc: "Loads a BPF program; `name`, the one positional argument, is a bundled program, " +
			"the path of your ELF object, or the path of your BPF C source ending in `.c` (paths are " +
			"relative to the script); the program in a file is chosen by " +
			"`section` (section or function name). A C source is compiled first with clang (`--clang`, " +
			"`$NKSCRIPT_CLANG`, else `clang-19` or `clang`; `hack/setup.sh` installs it) and " +
			"`-g -O2 -target bpf`, then `cflags`; libbpf's headers (`<bpf/bpf_helpers.h>`), the " +
			"kernel's UAPI headers, the source's and the script's directories and a `vmlinux.h` made from the running " +
			"kernel's BTF are on the include path. The object is cached (under `$NKSCRIPT_CACHE` or " +
			"~/.cache/nkscript) until the source, a header it includes, the flags, clang or the kernel " +
			"changes; clang's errors and the verifier's name the C source lines. Bundled, for tc hooks (tcx, netkit, legacy tc): " +
			"`pass` (counts packets), `drop_port` (drops TCP/UDP with source or destination port " +
			"`port`), `drop_flow` (drops IPv4 packets matching `src`/`src_len`, `dst`/`dst_len`, " +
			"`proto` and `port`, each optional), `policy_router` (policy routing by source or " +
			"destination, protocol and port, see policy()), `lb` (spreads flows to a VIP over the " +
			"backends in its maps, direct server return: `vip` and `backends` for IPv4, `vip_v6` and " +
			"`backends_v6` for IPv6; a backend is a slot with an ifindex, so `pop()` of any slot " +
			"leaves the others serving), `mirror` " +
			"(copies every packet to the device in its `monitor` map), `redirect_peer` (the netkit " +
			"fast path: a packet whose destination is in its `routes_v4`/`routes_v6` maps, prefix to the " +
			"host end of a pod's pair, goes straight into that pod, skipping the host's stack: " +
			"`rp.maps[\"routes_v4\"][\"10.0.2.0/24\"] = b.primary`; attach it to a netkit pair's " +
			"`\"peer\"` hook or to tcx ingress of the host end); for the xdp hook: `xdp_pass`, " +
			"`xdp_drop_port`. Every bundled program counts in a `stats` map (see stats()). Other " +
			"keyword arguments set the program's constants at load time: ints, bools, or IP address " +
			"strings for constants that are 4- or 16-byte arrays. It is unloaded when the script ends.",
		Attrs: []Attr{
			{"id", "the kernel's program ID"},
			{"maps", "the program's BPF maps by name: `prog.maps[\"backends\"]` is a map value"},
			{"name", "the program's name"},
			{"run", "method: run(pkt, repeat=1) runs the program on a packet (see program.run)"},
		},
		Example: `drop = program("drop_port", port = 12345)
tcp_only = program("drop_flow", src = "10.0.1.0", src_len = 24, proto = 6)
mine = program("bpf/filter.o", section = "tcx/ingress")
own = program("filter.bpf.c", section = "tcx/ingress", cflags = ["-DDEBUG"], blocked_port = 12345)`,
	},
	{
		Name: "attach", Kind: KindFunc,
		Signature: `attach(prog, target, hook, first=False, last=False, before=None, after=None, mechanism="auto", mode="auto") -> attachment`,
		Doc: "Attaches a program. `hook` is `\"primary\"` or `\"peer\"` (netkit; `target` is the " +
			"pair or either end), `\"ingress\"` or `\"egress\"` (tcx; `target` is a link), or " +
			"`\"xdp\"` (an XDP program such as `xdp_pass` or `xdp_drop_port`, one per device). Programs " +
			"on a tcx or netkit hook run in the order attached; `first=True`, `last=True`, " +
			"`before=x` or `after=x` (x a program or an attachment on that hook) place it instead. " +
			"chain() shows the order. `mechanism` chooses how: `\"auto\"` (tcx where the kernel " +
			"has it, else legacy tc; netkit and XDP links on their hooks), `\"tcx\"` (an error on a " +
			"kernel before 6.6), `\"tc\"` (a clsact qdisc and a cls_bpf filter in direct-action mode, " +
			"as `tc qdisc add dev X clsact; tc filter add dev X ingress bpf da ...` do, even where " +
			"there is tcx; the kernel runs tc filters after the tcx programs), `\"netkit\"` or " +
			"`\"xdp\"` (the only mechanisms of their hooks). `mode` is for `\"xdp\"`: `\"auto\"` " +
			"(the kernel's choice: in the driver if it supports XDP, such as veth, else generic), " +
			"`\"generic\"` (`ip link set dev X xdpgeneric`, any device) or `\"driver\"` (xdpdrv; " +
			"an error on a device without native XDP). A tc filter and the clsact qdisc nkscript " +
			"added go when the program is detached or the script ends.",
		Example: `att = attach(drop, nk, "peer")
attach(program("pass"), v.primary, "ingress", before = att)
attach(program("xdp_drop_port", port = 53), v.peer, "xdp")
attach(program("drop_port", port = 80), v.peer, "ingress", mechanism = "tc")
attach(program("xdp_pass"), v.primary, "xdp", mode = "generic")`,
	},
	{
		Name: "attachment", Kind: KindType,
		Signature: `attachment`,
		Doc:       "What attach() returns; detached when the script ends, or earlier with `detach()`.",
		Attrs: []Attr{
			{"detach", "method: detach() removes the program from the hook"},
			{"hook", "the hook name"},
			{"mechanism", "how it is attached: \"tcx\", \"tc\", \"netkit\" or \"xdp\""},
			{"mode", "for XDP, \"generic\" or \"driver\" as the kernel reports it (in a dry run, the mode asked for); None on other hooks"},
			{"program", "the attached program"},
			{"target", "the link it is attached to (for netkit hooks, the primary)"},
		},
		Example: `att = attach(drop, nk, "peer")
print(att.hook, att.program.name)`,
	},
	{
		Name: "attachment.detach", Kind: KindMethod,
		Signature: `attachment.detach() -> None`,
		Doc:       "Removes the program from the hook; the program stays loaded.",
		Example:   `att.detach()`,
	},
	{
		Name: "stats", Kind: KindFunc,
		Signature: `stats(prog) -> stats`,
		Doc: "Reads the counters of a program that has a `stats` map, as the bundled programs do. " +
			"The counters count since the program was loaded.",
		Attrs: []Attr{
			{"dropped", "packets dropped"},
			{"passed", "packets handed on"},
			{"redirected", "packets redirected"},
		},
		Example: `print(stats(drop).dropped)`,
	},
	{
		Name: "ping", Kind: KindFunc,
		Signature: `ping(dst, src=host, count=3, timeout="1s", ttl=64) -> ping_result`,
		Doc: "Sends `count` ICMP echo requests from inside `src` to the address `dst`, natively (no " +
			"ping binary), waiting up to `timeout` for each reply (a duration like `\"250ms\"` or " +
			"seconds; an echo whose request or reply the kernel's drop monitor sees dropped is lost at once, and the next one goes); `ttl` (1..255) is the IPv4 TTL or IPv6 hop limit, for paths longer than 64 hops. Returns a ping_result, which is true when any reply came; it prints " +
			"without round-trip times, so output stays deterministic, and where replies were lost it says " +
			"where the kernel dropped the requests or the route a namespace lacks (see drops()).",
		Example: `print(ping("10.0.0.2", count = 6))
if not ping("10.0.0.2", src = task).ok:
    fail("no route back")`,
	},
	{
		Name: "ping_result", Kind: KindType,
		Signature: `ping_result`,
		Doc:       "What ping() returns.",
		Attrs: []Attr{
			{"loss", "the percentage of requests without reply"},
			{"ok", "every request got its reply"},
			{"received", "the number of replies"},
			{"rtts", "round-trip times in milliseconds (never printed)"},
			{"sent", "the number of requests"},
		},
		Example: `r = ping("10.0.0.2")
print(r.sent, r.received, r.loss)`,
	},
	{
		Name: "expect_pass", Kind: KindFunc,
		Signature: `expect_pass(dst, port=None, proto="tcp", src=host, timeout="1s") -> None`,
		Doc: "Starts a listener in the namespace that owns the address `dst`, connects from `src` " +
			"and exchanges a message; prints `ok: ...` when it arrives, and otherwise fails the " +
			"script with file:line:col and the reason. `proto` is `\"tcp\"`, `\"udp\"` (both need " +
			"`port`) or `\"icmp\"`.",
		Example: `expect_pass("10.0.0.2", port = 12345)
expect_pass("10.0.0.1", proto = "icmp", src = task)`,
	},
	{
		Name: "drops", Kind: KindFunc,
		Signature: `drops(since=None) -> list`,
		Doc: "The packets the kernel dropped in the lab's namespaces, as the drop monitor (a BPF program on " +
			"the `skb:kfree_skb` tracepoint, loaded by the first traffic check or by this call) saw them: a list " +
			"of `drop` records with the attributes `ns`, `dev`, `hook` (`\"tcx egress\"`, `\"netkit peer\"`, ...), " +
			"`program` (the programs on that hook), `where` (the kernel function), `reason` (the kernel's drop " +
			"reason, e.g. `\"NO_SOCKET\"`), `why` (the reason in words), `proto`, `src`, `dst`, `sport`, `dport`, " +
			"`count` (identical drops are counted together) and `seq` (the number of the last of them); " +
			"`since=seq` keeps the drops after that one. A dry run sees none.",
		Example: `expect_drop("10.0.2.2", port = 8080)
for d in drops():
    print(d.ns, d.dev, d.hook, d.program, d.reason, d.count)`,
	},
	{
		Name: "expect_drop", Kind: KindFunc,
		Signature: `expect_drop(dst, port=None, proto="tcp", src=host, timeout="1s", by=None) -> None`,
		Doc: "The opposite of expect_pass: the message must not arrive within `timeout`. With " +
			"`by=prog`, that program's drop counter must rise too, and the wait ends as soon as it " +
			"drops the packet. Without `by=`, the `ok:` line says where the kernel dropped the packets " +
			"(namespace, device, hook and program, or the reason in words), as a failed expect_pass does, and the " +
			"wait ends as soon as the kernel drops a packet of the flow; see drops().",
		Example: `drop = program("drop_port", port = 12345)
attach(drop, nk, "peer")
expect_drop("10.0.0.2", port = 12345, by = drop)`,
	},
	{
		Name: "exec", Kind: KindFunc,
		Signature: `exec(ns, cmd) -> string`,
		Doc: "Runs a host command inside a namespace and returns its standard output; a string is " +
			"run by `/bin/sh -c`, a list is the argv. A non-zero exit fails the script with the " +
			"command's error output.",
		Example: `print(exec(task, "ip -br addr"))
exec(task, ["ip", "link", "set", "lo", "up"])`,
	},
	{
		Name: "fail", Kind: KindFunc,
		Signature: `fail(msg="failed")`,
		Doc:       "Stops the script with an error, `fail: MSG`, at the caller's file:line:col.",
		Example: `if ping("10.0.0.2").loss > 0:
    fail("lost pings")`,
	},
	{
		Name: "argv", Kind: KindValue,
		Signature: `argv`,
		Doc:       "A tuple of strings: the script's path and the arguments after it on the command line.",
		Example:   `count = int(argv[1]) if len(argv) > 1 else 3`,
	},
	{
		Name: "kernel", Kind: KindValue,
		Signature: `kernel`,
		Doc: "What the running kernel offers, for labs that adapt to it: a lab written for netkit " +
			"can fall back to veth pairs and tcx (or legacy tc) where `kernel.netkit` is False. " +
			"The feature attributes probe the kernel once, on first use.",
		Attrs: []Attr{
			{"netkit", "True if netkit devices can be created (CONFIG_NETKIT, Linux 6.7+)"},
			{"release", "the kernel release, as uname -r prints it"},
			{"tcx", "True if programs attach to ingress/egress through tcx links (Linux 6.6+)"},
		},
		Example: `pair = netkit_pair if kernel.netkit else veth_pair
print(kernel.release)`,
	},
}

// entry returns the entry called name.
func entry(name string) (*Entry, bool) {
	for i := range Docs {
		if Docs[i].Name == name {
			return &Docs[i], true
		}
	}
	return nil, false
}

// Doc returns the plain-text documentation of name ("netkit_pair",
// "link", "link.addr"), as `nkscript doc NAME` and help() print it.
func Doc(name string) (string, bool) {
	e, ok := entry(name)
	if !ok {
		return "", false
	}
	return e.Text(), true
}

// DocNames lists the documented names in reference order.
func DocNames() []string {
	names := make([]string, len(Docs))
	for i, e := range Docs {
		names[i] = e.Name
	}
	return names
}

// Params returns the parameter names of a function or method entry, in
// signature order, without defaults and stars; nil for values and types.
func (e *Entry) Params() []string {
	open := strings.IndexByte(e.Signature, '(')
	end := strings.LastIndexByte(e.Signature, ')')
	if open < 0 || end < open {
		return nil
	}
	var params []string
	for _, p := range strings.Split(e.Signature[open+1:end], ",") {
		p = strings.TrimSpace(p)
		p, _, _ = strings.Cut(p, "=")
		p = strings.TrimLeft(p, "*")
		if p != "" {
			params = append(params, p)
		}
	}
	return params
}

// funcName is the name a function's or method's errors start with.
func (e *Entry) funcName() string {
	if e.Kind != KindFunc && e.Kind != KindMethod {
		return ""
	}
	name := e.Name
	if _, m, ok := strings.Cut(name, "."); ok {
		name = m
	}
	return name
}

// Text renders the entry as plain text for a terminal.
func (e *Entry) Text() string {
	var b strings.Builder
	b.WriteString(e.Signature + "\n\n")
	b.WriteString(wrap(e.Doc, 80) + "\n")
	if len(e.Attrs) > 0 {
		b.WriteString("\nAttributes:\n")
		for _, a := range e.Attrs {
			fmt.Fprintf(&b, "  .%-10s %s\n", a.Name, a.Doc)
		}
	}
	if e.Example != "" {
		b.WriteString("\nExample:\n")
		for _, l := range strings.Split(e.Example, "\n") {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// Markdown renders the entry as a section of the reference.
func (e *Entry) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### `%s`\n\n```python\n%s\n```\n\n%s\n", e.Name, e.Signature, e.Doc)
	if len(e.Attrs) > 0 {
		b.WriteString("\n| attribute | |\n|---|---|\n")
		for _, a := range e.Attrs {
			fmt.Fprintf(&b, "| `.%s` | %s |\n", a.Name, a.Doc)
		}
	}
	if e.Example != "" {
		fmt.Fprintf(&b, "\nExample:\n\n```python\n%s\n```\n", e.Example)
	}
	return b.String()
}

// Reference renders the whole reference as Markdown: what `nkscript doc`
// prints and what the README's reference section holds.
func Reference() string {
	var b strings.Builder
	b.WriteString("Every builtin with the parameters it takes (by position, or by keyword as named " +
		"here) and its defaults. `nkscript doc NAME` prints one entry, `help(x)` in the REPL " +
		"does the same.\n")
	for i := range Docs {
		b.WriteString("\n" + Docs[i].Markdown())
	}
	return b.String()
}

// HelpText returns the documentation of a builtin function, a method or
// a value of an nkscript type, or "" when v is none of those.
func HelpText(v starlark.Value) string {
	name := ""
	switch v := v.(type) {
	case *starlark.Builtin:
		name = v.Name()
		if recv := v.Receiver(); recv != nil {
			name = docName(recv) + "." + name
		}
	case *starlarkstruct.Struct:
		if v.Constructor() == starlark.String("stats") {
			name = "stats"
		}
	default:
		name = docName(v)
	}
	e, ok := entry(name)
	if !ok {
		return ""
	}
	return e.Text()
}

// docName is the name under which a value of an nkscript type is
// documented: its type, but "pair" for both kinds of pair and "host" for
// host; "" for other values.
func docName(v starlark.Value) string {
	switch v := v.(type) {
	case *Netns:
		if v.isHost {
			return "host"
		}
		return "netns"
	case *Pair:
		return "pair"
	case value:
		return v.Type()
	}
	return ""
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(w) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// unexpectedKeyword matches starlark.UnpackArgs's error for an unknown
// keyword, with the hint Starlark itself may add (its distance misjudges
// prefixes: it suggests "peer" for "peer_nss").
var unexpectedKeyword = regexp.MustCompile(`^((\w+): unexpected keyword argument "(\w+)")(?: \(did you mean \w+\?\))?$`)

// SuggestKeyword adds a suggestion to the error a builtin or method
// reports for an unknown keyword argument, like
// `netkit_pair: unexpected keyword argument "peer_nss" (did you mean "peer_ns"?)`,
// choosing the closest documented parameter. Other errors, and unknown
// keywords close to no parameter, are returned unchanged. A suggestion
// Starlark made already is replaced.
func SuggestKeyword(err error) error {
	if err == nil {
		return nil
	}
	m := unexpectedKeyword.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	msg, fn, kw := m[1], m[2], m[3]
	var params []string
	for i := range Docs {
		if Docs[i].funcName() == fn {
			params = append(params, Docs[i].Params()...)
		}
	}
	best := Nearest(kw, params)
	if best == "" {
		return err
	}
	return &suggestError{err: err, msg: fmt.Sprintf("%s (did you mean %q?)", msg, best)}
}

// suggestError is an unknown-keyword error with a better suggestion.
type suggestError struct {
	err error
	msg string
}

func (e *suggestError) Error() string { return e.msg }

func (e *suggestError) Unwrap() error { return e.err }

// suggestKeywords wraps a builtin so that its unknown-keyword errors carry
// a suggestion.
func suggestKeywords(fn builtinFn) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		v, err := fn(thread, b, args, kwargs)
		if err != nil {
			return v, SuggestKeyword(err)
		}
		return v, nil
	}
}

// Nearest returns the candidate closest to name (case-insensitive edit
// distance), or "" when none is within half of name's length: the
// "did you mean" of every suggestion nkscript makes.
func Nearest(name string, candidates []string) string {
	best, bestDist := "", len(name)/2+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
