// Package builtins is nkscript's Starlark surface: the functions a lab
// script calls and the values they return. Per-run state lives in the
// Starlark thread (thread.SetLocal), never in package globals; the kernel
// work is done by package datapath. `nkscript doc` prints the reference
// (Docs), with every keyword and default; in short:
//
// Namespaces and links:
//
//	netns(name) -> netns
//	host, argv, kernel                    predeclared values
//	netkit_pair(primary, peer, mode="l3", primary_ns=host, peer_ns=None,
//	    policy="forward", peer_policy="forward", mtu=None, peer_mtu=None,
//	    scrub="default", peer_scrub="default", num_tx_queues=1,
//	    num_rx_queues=1, headroom=0, tailroom=0) -> netkit_pair
//	veth_pair(primary, peer, primary_ns=host, peer_ns=None, mtu=None) -> veth_pair
//	bridge(name, ns=host, ports=[], mtu=None) -> link
//	vxlan(name, vni, remote=None, local=None, dev=None, port=4789,
//	    ns=host) -> link
//	tun(name, ns=host) -> link
//	vlan(link, id, name=None) -> link
//	route(dst, via=None, dev=None, ns=host, table=None) -> route
//	rule(src=None, dst=None, iif=None, oif=None, fwmark=None, table,
//	    priority=None, ns=host) -> rule
//	sysctl(key, value, ns=host) -> None
//	forwarding(ns=host) -> None
//
// Programs:
//
//	program(name, section=None, cflags=[], **consts) -> program
//	attach(prog, target, hook, first=False, last=False, before=None, after=None, mechanism="auto", mode="auto") -> attachment
//	chain(link, hook) -> list
//	stats(prog) -> stats
//	trace(prog=None) -> trace
//	policy(router, src=None, via, next_hop=None, dst=None, proto=None, dport=None) -> policy
//	policies(router) -> list
//
// Packet tests (prog.run(pkt, repeat=1) -> run_result):
//
//	tcp(src, dst, sport=40000, dport=80, flags="S", payload="", ttl=64,
//	    eth=None, vlan=None) -> packet
//	udp(src, dst, sport=40000, dport=53, payload="", ttl=64, eth=None,
//	    vlan=None) -> packet
//	icmp(src, dst, type="echo-request", code=0, id=1, seq=1, payload="",
//	    ttl=64, eth=None, vlan=None) -> packet
//	eth(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") -> eth
//	packet(data) -> packet
//
// Traffic:
//
//	ping(dst, src=host, count=3, timeout="1s", ttl=64) -> ping_result
//	expect_pass(dst, port=None, proto="tcp", src=host, timeout="1s") -> None
//	expect_drop(dst, port=None, proto="tcp", src=host, timeout="1s", by=None) -> None
//	serve(ns, port, proto="tcp", reply=None) -> server
//	connect(dst, port, src=host, proto="tcp", timeout="1s") -> connect_result
//	capture(links, pcap=None) -> capture
//	drops(since=None) -> list
//	exec(ns, cmd) -> string
//
// The run:
//
//	pause(msg="") -> None
//	show(ns=None, ids=False) -> None
//	fail(msg="failed")
package builtins

import (
	"sort"

	"go.starlark.net/starlark"
)

type builtinFn = func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// universe is every builtin function, by name: the one declaration of
// what a script can call besides the predeclared values.
var universe = declare(map[string]builtinFn{
	"attach":      attachFn,
	"bridge":      bridgeFn,
	"capture":     captureFn,
	"chain":       chainFn,
	"connect":     connectFn,
	"drops":       dropsFn,
	"eth":         ethFn,
	"exec":        execFn,
	"expect_drop": expectDrop,
	"expect_pass": expectPass,
	"fail":        failFn,
	"forwarding":  forwardingFn,
	"icmp":        icmpFn,
	"netkit_pair": netkitPair,
	"netns":       netnsFn,
	"packet":      packetFn,
	"pause":       pauseFn,
	"show":        showFn,
	"ping":        pingFn,
	"policies":    policiesFn,
	"policy":      policyFn,
	"program":     programFn,
	"route":       routeFn,
	"rule":        ruleFn,
	"serve":       serveFn,
	"stats":       statsFn,
	"sysctl":      sysctlFn,
	"tcp":         tcpFn,
	"trace":       traceFn,
	"tun":         tunFn,
	"udp":         udpFn,
	"veth_pair":   vethPair,
	"vlan":        vlanFn,
	"vxlan":       vxlanFn,
})

// predeclaredValues are the values every script sees besides the
// builtins; Run.Globals makes them per run.
var predeclaredValues = []string{"argv", "host", "kernel"}

// Names lists the builtins and predeclared values, for help and
// completion.
func Names() []string {
	names := append([]string{}, predeclaredValues...)
	for n := range universe {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// declare makes the builtins of fns, each wrapped as every builtin is.
func declare(fns map[string]builtinFn) starlark.StringDict {
	d := make(starlark.StringDict, len(fns))
	for name, fn := range fns {
		d[name] = starlark.NewBuiltin(name, recoverPanics(suggestKeywords(prefixName(fn))))
	}
	return d
}

// newMethod makes the method name of recv, wrapped as builtins are
// except for keyword suggestions.
func newMethod(recv starlark.Value, name string, fn builtinFn) *starlark.Builtin {
	return starlark.NewBuiltin(name, recoverPanics(prefixName(fn))).BindReceiver(recv)
}

// newPlainMethod makes a method whose errors speak for themselves: they
// name the value, not the method.
func newPlainMethod(recv starlark.Value, name string, fn builtinFn) *starlark.Builtin {
	return starlark.NewBuiltin(name, recoverPanics(fn)).BindReceiver(recv)
}
