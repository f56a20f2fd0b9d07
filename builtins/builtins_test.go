package builtins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/internal/testutil"
	"go.starlark.net/starlark"
)

var seq atomic.Int32

// prefix returns a short name prefix unique to this test process, so that
// named namespaces of parallel test binaries never clash.
func prefix() string {
	return fmt.Sprintf("b%x%x", os.Getpid()%0xffff, seq.Add(1))
}

// runScript runs src against a lab on the kernel whose host is a fresh
// anonymous namespace, closes the lab, and checks that nothing is left.
func runScript(t *testing.T, src string) (string, error) {
	t.Helper()
	lab, _ := testutil.KernelLab(t)
	return runOn(t, lab, src)
}

// runRecorded runs src against a lab on the recording backend, which
// checks every call as the kernel's does and changes nothing: for tests
// of argument handling, which need no privileges.
func runRecorded(t *testing.T, src string) (string, error) {
	t.Helper()
	return runOn(t, testutil.RecordedLab(t), src)
}

// runOn runs src on lab with $P replaced by a prefix of its own, closes
// the lab, and checks that no namespace of that prefix is left.
func runOn(t *testing.T, lab *datapath.Lab, src string) (string, error) {
	t.Helper()
	var out strings.Builder
	r := NewRun(Options{Lab: lab, Context: context.Background(), Stdout: &out})
	p := prefix()
	src = strings.ReplaceAll(src, "$P", p)
	_, runErr := r.ExecFile(r.Thread("test.star"), "test.star", src)
	if err := lab.Close(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if ents, _ := os.ReadDir(datapath.NetnsDir); ents != nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
	}
	return strings.ReplaceAll(out.String(), p, "$P"), runErr
}

func mustRun(t *testing.T, src string) string {
	t.Helper()
	out, err := runScript(t, src)
	if err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			t.Fatalf("script failed: %s", ee.Backtrace())
		}
		t.Fatalf("script failed: %v", err)
	}
	return out
}

const twoHosts = `
ns = netns("$P-a")
p = veth_pair("v0", "v1", peer_ns = ns)
p.primary.addr("10.1.0.1/24").up()
p.peer.addr("10.1.0.2/24").up()
`

func TestVethLabTraffic(t *testing.T) {
	out := mustRun(t, twoHosts+`
r = ping("10.1.0.2", count = 2)
print(r)
if r.sent != 2 or r.received != 2 or r.loss != 0.0 or not r.ok or len(r.rtts) != 2:
    fail("bad ping result %s" % r)
expect_pass("10.1.0.2", port = 8080)
expect_pass("10.1.0.2", port = 8080, proto = "udp")
expect_pass("10.1.0.1", proto = "icmp", src = ns)
drop = program("drop_port", port = 8080)
a = attach(drop, p.primary, "ingress")
print(a)
expect_drop("10.1.0.2", port = 8080, by = drop)
expect_drop("10.1.0.2", port = 8080, proto = "udp", by = drop)
expect_pass("10.1.0.2", port = 8081)
s = stats(drop)
if s.dropped < 2 or s.passed < 1:
    fail("counters did not move: %s" % s)
a.detach()
expect_pass("10.1.0.2", port = 8080)
`)
	want := `ping(10.1.0.2 from host: 2 sent, 2 received, 0% loss)
ok: tcp host -> 10.1.0.2:8080 passed
ok: udp host -> 10.1.0.2:8080 passed
ok: icmp netns("$P-a") -> 10.1.0.1 passed
attachment(program("drop_port"), "v0", "ingress")
ok: tcp host -> 10.1.0.2:8080 dropped by drop_port
ok: udp host -> 10.1.0.2:8080 dropped by drop_port
ok: tcp host -> 10.1.0.2:8081 passed
ok: tcp host -> 10.1.0.2:8080 passed
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestRoutedLab(t *testing.T) {
	// ns1 <-> host (router) <-> ns2, as in the CNF guide, on veth.
	mustRun(t, `
ns1 = netns("$P-1")
ns2 = netns("$P-2")
a = veth_pair("r1", "h1", peer_ns = ns1)
b = veth_pair("r2", "h2", peer_ns = ns2)
a.primary.addr("10.0.1.1/24").up()
b.primary.addr("10.0.2.1/24").up()
a.peer.addr("10.0.1.2/24").up()
b.peer.addr("10.0.2.2/24").up()
route("default", via = "10.0.1.1", ns = ns1)
route("10.0.1.0/24", via = "10.0.2.1", dev = b.peer, ns = ns2)
if ping("10.0.2.2", src = ns1, count = 1).ok:
    fail("forwarding is off, yet the ping went through")
forwarding()
if not ping("10.0.2.2", src = ns1, count = 1).ok:
    fail("no route through the router")
expect_pass("10.0.2.2", port = 9000, src = ns1)
sysctl("net.ipv4.ip_default_ttl", 9, ns = ns1)
if exec(ns1, "cat /proc/sys/net/ipv4/ip_default_ttl").strip() != "9":
    fail("sysctl not set in ns1")
`)
}

func TestValues(t *testing.T) {
	out := mustRun(t, twoHosts+`
print(p)
print(p.primary, p.peer)
print(p.kind, p.mode, p.primary.name, p.peer.ns, p.peer.ns.name, host)
print(p.primary.addrs)
print(type(p), type(p.primary), type(ns), type(host))
print(len(p.primary.mac) == 17, p.primary.pair == p)
print(exec(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"]).strip())
print(exec(ns, "echo $((1+2))").strip())
`)
	want := `veth_pair("v0", "v1")
link("v0", ns=host) link("v1", ns=netns("$P-a"))
veth None v0 netns("$P-a") $P-a host
["10.1.0.1/24"]
veth_pair link netns netns
True True
0
3
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

// TestErrors checks the messages of bad calls. Those the kernel decides
// (kernel: true) run on the kernel; the rest are checked before anything
// reaches a backend, and run on the recorder, without privileges.
func TestErrors(t *testing.T) {
	for i, tc := range []struct {
		src, want string
		kernel    bool
	}{
		{`netns("a/b")`, `netns: namespace name "a/b" is not a valid file name`, false},
		{`netns("host")`, `reserved for the namespace nkscript runs in`, false},
		{`veth_pair("v0", "v0")`, `both ends are named "v0"`, false},
		{`veth_pair("v0", "v1", mtu = 20)`, `mtu=20 is out of range; use 68..65535`, false},
		{`veth_pair("v0", "v1", primary_ns = 3)`, `primary_ns must be a netns, not 3 (int)`, false},
		{twoHosts + `p.primary.addr("10.1.0.1")`, `address "10.1.0.1" has no prefix length; write it like "10.1.0.1/24"`, false},
		{twoHosts + `p.primary.addr("10.1.0.1/24")`, `address 10.1.0.1/24 is already on v0`, true},
		{twoHosts + `route("10.9.0.0/24")`, `route 10.9.0.0/24: give via= (a gateway address) or dev= (a link)`, false},
		{twoHosts + `route("10.9.0.1/24", via = "10.1.0.2")`, `dst "10.9.0.1/24" has host bits set; did you mean "10.9.0.0/24"?`, false},
		{twoHosts + `route("10.9.0.0/24", via = "10.5.0.2")`, `gateway 10.5.0.2 is not on any connected network there`, true},
		{twoHosts + `route("10.9.0.0/24", dev = p.peer)`, `link v1 is in namespace $P-a, not host`, false},
		{`sysctl("kernel.panic", 1)`, `only network (net.*) settings belong to a namespace`, false},
		{`ping("10.0.0.300")`, `ping: dst "10.0.0.300" is not a valid IP address`, false},
		{`ping("10.0.0.1", timeout = "soon")`, `timeout="soon" is not a duration; write it like "1s" or "250ms"`, false},
		{twoHosts + `expect_pass("10.1.0.2")`, `proto "tcp" needs a port, e.g. port=12345`, false},
		{twoHosts + `expect_pass("10.1.0.2", port = 70000)`, `port=70000 is not a port number 1..65535`, false},
		{twoHosts + `expect_pass("10.1.0.2", proto = "sctp", port = 1)`, `proto "sctp" is not supported; use "tcp", "udp" or "icmp"`, false},
		{twoHosts + `expect_pass("10.1.0.9", port = 1)`, `no namespace of this lab has the address 10.1.0.9`, false},
		{twoHosts + `expect_pass("10.1.0.2", port = 1, proto = "icmp")`, `proto "icmp" has no ports; remove port=1`, false},
		{`program("nope")`, `unknown bundled program "nope"`, false},
		{`program("drop_port", prot = 1)`, `prot`, false},
		{`program("drop_port", port = 70000)`, `70000`, false},
		{`program("./missing.o")`, `missing.o`, false},
		{twoHosts + `attach(program("pass"), p, "ingress")`, `hook "ingress" attaches to one device; give a link such as v0.primary`, false},
		{twoHosts + `attach(program("pass"), p.primary, "peer")`, `hook "peer" needs a netkit device, but v0 is a veth`, false},
		{twoHosts + `attach("pass", p.primary, "ingress")`, `prog must be a program (from program(...)), not "pass" (string)`, false},
		{`exec(host, "exit 3")`, `exit status 3`, true},
		{`exec(None, "true")`, `ns is None; pass host or a netns`, false},
		{`fail("custom")`, `fail: custom`, true},
	} {
		run := runRecorded
		if tc.kernel {
			run = runScript
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := run(t, tc.src)
			want := strings.ReplaceAll(tc.want, "$P", "")
			if err == nil {
				t.Fatalf("%s\n  no error, want %q", tc.src, want)
			}
			if got := err.Error(); !strings.Contains(got, want) && !strings.Contains(strings.ReplaceAll(got, prefixOf(got), ""), want) {
				t.Errorf("%s\n  error %q\n  want  %q", tc.src, got, want)
			}
		})
	}
}

// prefixOf finds the test's namespace prefix in an error message.
func prefixOf(s string) string {
	i := strings.Index(s, "namespace b")
	if i < 0 {
		return "\x00"
	}
	rest := s[i+len("namespace "):]
	if j := strings.Index(rest, "-a"); j > 0 {
		return rest[:j]
	}
	return "\x00"
}

func TestExpectationsFail(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{twoHosts + `p.peer.down()
expect_pass("10.1.0.2", port = 7000, timeout = "200ms")`, `expect_pass: tcp host -> 10.1.0.2:7000 was not delivered`},
		{twoHosts + `expect_drop("10.1.0.2", port = 7000)`, `expect_drop: tcp host -> 10.1.0.2:7000 was delivered, but it should have been dropped`},
		{twoHosts + `counter = program("pass")
attach(counter, p.primary, "ingress")
p.peer.down()
expect_drop("10.1.0.2", port = 7000, timeout = "200ms", by = counter)`, `but pass dropped nothing (drop counter stayed at 0): something else lost it`},
	} {
		_, err := runScript(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  error %v\n  want  %q", tc.src, err, tc.want)
		}
	}
}

func TestNetkitPair(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	if !testenv.Netkit(t) {
		_, err := runScript(t, `netkit_pair("nk0", "nk1")`)
		if err == nil || !strings.Contains(err.Error(), "CONFIG_NETKIT") || !strings.Contains(err.Error(), "--vm") || !strings.Contains(err.Error(), datapath.KernelRelease()) {
			t.Fatalf("netkit_pair without netkit: %v", err)
		}
		testenv.SkipBecause(t, testenv.NoNetkit, "the refusal was checked; kernel "+datapath.KernelRelease())
	}
	out := mustRun(t, `
ns = netns("$P-nk")
nk = netkit_pair("nk0", "nk1", peer_ns = ns)
print(nk, nk.kind, nk.mode, nk.peer.mac)
nk.primary.addr("10.2.0.1/24").up()
nk.peer.addr("10.2.0.2/24").up()
expect_pass("10.2.0.2", port = 5000)
drop = program("drop_port", port = 5000)
a = attach(drop, nk.peer, "peer")
print(a)
expect_drop("10.2.0.2", port = 5000, by = drop)
a.detach()
b = attach(drop, nk, "primary")
expect_drop("10.2.0.2", port = 5000, by = drop)
`)
	want := `netkit_pair("nk0", "nk1") netkit l3 None
ok: tcp host -> 10.2.0.2:5000 passed
attachment(program("drop_port"), "nk0", "peer")
ok: tcp host -> 10.2.0.2:5000 dropped by drop_port
ok: tcp host -> 10.2.0.2:5000 dropped by drop_port
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestLoadRelative(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	dir := t.TempDir()
	os.MkdirAll(dir+"/lib", 0o755)
	os.WriteFile(dir+"/lib/a.star", []byte(`load("b.star", "x")
y = x + 1
`), 0o644)
	os.WriteFile(dir+"/lib/b.star", []byte("x = 41\n"), 0o644)
	os.WriteFile(dir+"/main.star", []byte(`load("lib/a.star", "y")
print(y)
`), 0o644)
	host, err := datapath.NewAnonNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: t.TempDir(), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	var out strings.Builder
	r := NewRun(Options{Lab: lab, Stdout: &out, Argv: []string{dir + "/main.star"}})
	if _, err := r.ExecFile(r.Thread(dir+"/main.star"), dir+"/main.star", nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "42\n" {
		t.Errorf("output %q, want 42", out.String())
	}
}

// TestRulesAndRouteRemove checks rule() and route() values: the rule is
// in ip's list while it exists, remove() takes a rule or a route away at
// once, and their attributes say what was asked.
func TestRulesAndRouteRemove(t *testing.T) {
	out := mustRun(t, twoHosts+`
r = route("10.9.0.0/24", via = "10.1.0.2", table = 100)
ru = rule(src = "10.1.0.0/24", table = 100, priority = 1100)
print(ru.src, ru.dst, ru.table, ru.priority, r.dst, r.via, r.table)
print("1100:" in exec(host, "ip rule show"))
print("10.9.0.0/24" in exec(host, "ip route show table 100"))
ru.remove()
r.remove()
print("1100:" in exec(host, "ip rule show"))
print("10.9.0.0/24" in exec(host, "ip route show table 100"))
`)
	want := `10.1.0.0/24 None 100 1100 10.9.0.0/24 10.1.0.2 100
True
True
False
False
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	for _, tc := range []struct{ src, want string }{
		{`rule(src = "10.0.0.0/8")`, "give table="},
		{`rule(src = "10.0.0.1/8", table = 5)`, "has host bits set"},
		{`rule(fwmark = 0, table = 5)`, "fwmark=0 is not a mark"},
		{twoHosts + `rule(iif = p.peer, table = 5)`, "link v1 is in namespace"},
	} {
		if _, err := runRecorded(t, tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}
