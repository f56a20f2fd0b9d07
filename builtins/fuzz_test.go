package builtins

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
	"go.starlark.net/starlark"
)

// Fuzz targets for the builtins' argument parsing and for whole scripts.
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzScript$' -fuzztime 20s ./builtins/
//
// Without -fuzz, `go test` runs the seeds and testdata/fuzz/<Name>/.

// fzQuoted reports whether msg quotes s as %q would.
func fzQuoted(msg, s string) bool { return strings.Contains(msg, strconv.Quote(s)) }

// fzTempDir returns a directory for the files of one fuzzing process, on
// tmpfs when there is one: creating and deleting a file per execution on
// ext4 slows fuzzing a hundredfold.
func fzTempDir(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "nkscript-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

// fzUnpack calls a builtin called name whose one parameter, param, is
// unpacked into u, as every builtin unpacks its arguments, with v; it
// returns the error as a script sees it.
func fzUnpack(name, param string, u starlark.Unpacker, v starlark.Value) error {
	b := declare(map[string]builtinFn{name: func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return starlark.None, unpackArgs(b, args, kwargs, param, u)
	}})[name].(*starlark.Builtin)
	_, err := b.CallInternal(nil, starlark.Tuple{v}, nil)
	return err
}

// FuzzParsePrefix: an accepted CIDR round-trips through its string form
// and keeps its host bits; an error starts with the builtin's name, quotes
// the input, and any fix it suggests parses.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1/24", "fd00::1/64", "10.0.0.300/24", "10.0.0.1", "10.0.0.1/33", "::ffff:10.0.0.1/120",
		"FD00::1/64", "10.0.0.1/024", "", "/24", "1.2.3.4/", "fe80::1%eth0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c cidrArg
		err := fzUnpack("addr", "cidr", &c, starlark.String(s))
		p := netip.Prefix(c)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "addr: address ") || !fzQuoted(msg, s) {
				t.Fatalf("parsePrefix(%q): error %q does not start with the builtin and quote the input", s, msg)
			}
			if strings.Contains(msg, "has no prefix length") {
				if _, err := netip.ParsePrefix(s + "/24"); err != nil {
					t.Fatalf("parsePrefix(%q) suggests %q, which does not parse: %v", s, s+"/24", err)
				}
			}
			return
		}
		if !p.IsValid() {
			t.Fatalf("parsePrefix(%q) = invalid prefix %v", s, p)
		}
		back, err := netip.ParsePrefix(p.String())
		if err != nil || back != p {
			t.Fatalf("parsePrefix(%q) = %v, which reads back as %v, %v", s, p, back, err)
		}
		a, err := netip.ParseAddr(s[:strings.LastIndexByte(s, '/')])
		if err != nil || a != p.Addr() {
			t.Fatalf("parsePrefix(%q) = %v: the address is not %v", s, p, a)
		}
	})
}

// FuzzParseAddr: an accepted address round-trips through its string
// form; an error quotes the input, and the address it suggests for a
// prefix parses and is the prefix's.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"10.0.0.2", "fd00::2", "::ffff:10.0.0.2", "10.0.0.2/24", "fd00::/64", "10.0.0.256", "", "localhost",
		"fe80::1%eth0", "FD00::2", "010.0.0.1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var arg addrArg
		err := fzUnpack("ping", "dst", &arg, starlark.String(s))
		a := arg.a
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "ping: dst ") || !fzQuoted(msg, s) {
				t.Fatalf("parseAddr(%q): error %q does not start with the builtin and quote the input", s, msg)
			}
			if strings.Contains(msg, "is a prefix") {
				p := netip.MustParsePrefix(s)
				if !fzQuoted(msg, p.Addr().String()) {
					t.Fatalf("parseAddr(%q): %q does not suggest %q", s, msg, p.Addr())
				}
			}
			return
		}
		back, err := netip.ParseAddr(a.String())
		if err != nil || back != a {
			t.Fatalf("parseAddr(%q) = %v, which reads back as %v, %v", s, a, back, err)
		}
	})
}

// FuzzToDuration: an accepted timeout is positive and is what was written:
// a Go duration string, or 1..86400 seconds as an int or float. An error
// names the builtin and the parameter and gives the offending value.
//
// kind selects the value: 0 None, 1 string, 2 int, 3 float, 4 an int
// beyond 64 bits, 5 a list.
func FuzzToDuration(f *testing.F) {
	f.Add(uint8(1), "1s", int64(0), 0.0)
	f.Add(uint8(1), "250ms", int64(0), 0.0)
	f.Add(uint8(1), "0s", int64(0), 0.0)
	f.Add(uint8(1), "1", int64(0), 0.0)
	f.Add(uint8(1), "9999999h", int64(0), 0.0)
	f.Add(uint8(2), "", int64(3), 0.0)
	f.Add(uint8(2), "", int64(86401), 0.0)
	f.Add(uint8(2), "", int64(0), 0.0)
	f.Add(uint8(3), "", int64(0), 0.5)
	f.Add(uint8(3), "", int64(0), math.NaN())
	f.Add(uint8(3), "", int64(0), math.Inf(-1))
	f.Add(uint8(3), "", int64(0), 1e-12)
	f.Add(uint8(4), "", int64(1), 0.0)
	f.Add(uint8(0), "", int64(0), 0.0)
	f.Add(uint8(5), "", int64(0), 0.0)
	const def = 7 * time.Second
	f.Fuzz(func(t *testing.T, kind uint8, s string, n int64, x float64) {
		var v starlark.Value
		var shown string // how an error should show the value
		switch kind % 6 {
		case 0:
			v = starlark.None
		case 1:
			v, shown = starlark.String(s), strconv.Quote(s)
		case 2:
			v, shown = starlark.MakeInt64(n), strconv.FormatInt(n, 10)
		case 3:
			v, shown = starlark.Float(x), starlark.Float(x).String()
		case 4:
			b := new(big.Int).Lsh(big.NewInt(n), 64)
			v, shown = starlark.MakeBigInt(b), b.String()
		default:
			v = starlark.NewList(nil)
			shown = "list"
		}
		arg := durationArg(def)
		err := fzUnpack("ping", "timeout??", &arg, v)
		d := time.Duration(arg)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "ping: timeout") {
				t.Fatalf("toDuration(%v): error %q does not name the builtin and parameter", v, msg)
			}
			if !strings.Contains(msg, shown) {
				t.Fatalf("toDuration(%v): error %q does not give the value %s", v, msg, shown)
			}
			return
		}
		if d <= 0 {
			t.Fatalf("toDuration(%v) = %v", v, d)
		}
		switch kind % 6 {
		case 0:
			if d != def {
				t.Fatalf("toDuration(None) = %v, want the default %v", d, def)
			}
		case 1:
			if want, err := time.ParseDuration(s); err != nil || d != want {
				t.Fatalf("toDuration(%q) = %v, want %v (%v)", s, d, want, err)
			}
		case 2:
			if n < 1 || n > 86400 || d != time.Duration(n)*time.Second {
				t.Fatalf("toDuration(%d) = %v", n, d)
			}
		case 3:
			if !(x > 0 && x <= 86400) || d != time.Duration(x*float64(time.Second)) {
				t.Fatalf("toDuration(%v) = %v", x, d)
			}
		default:
			t.Fatalf("toDuration(%v) = %v, want an error", v, d)
		}
	})
}

// fzRouteNs is an anonymous namespace shared by the executions of one
// fuzzing process, with the routes it had when created.
var fzRouteNs = sync.OnceValues(func() (*datapath.Netns, error) {
	return datapath.NewAnonNetns()
})

// fzRoutes lists the routes of every table in ns, as strings.
func fzRoutes(t *testing.T, ns *datapath.Netns) []string {
	t.Helper()
	rs, err := ns.Handle().RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

// fzHasRoute reports whether ns has a route to dst in any table.
func fzHasRoute(t *testing.T, ns *datapath.Netns, dst netip.Prefix) bool {
	t.Helper()
	rs, err := ns.Handle().RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		got := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Family == netlink.FAMILY_V6 {
			got = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			got = netip.PrefixFrom(a.Unmap(), ones)
		}
		if got == dst {
			return true
		}
	}
	return false
}

// fzLab returns a lab whose host is ns, journaling into a fresh directory
// under base, and a run of it whose context is already cancelled, so that
// no builtin waits or sends traffic.
func fzLab(t *testing.T, base string, ns *datapath.Netns) (*datapath.Lab, *Run, string) {
	t.Helper()
	dir, err := os.MkdirTemp(base, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: dir, Script: "fuzz.star", Host: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewRun(Options{Lab: lab, Context: ctx, Stdout: io.Discard, ReadyTimeout: time.Millisecond, Argv: []string{"fuzz.star"}})
	return lab, r, dir
}

// fzCloseLab closes lab and checks it removed its journal.
func fzCloseLab(t *testing.T, lab *datapath.Lab, dir string) {
	t.Helper()
	if err := lab.Close(); err != nil {
		t.Fatalf("lab cleanup: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("lab closed cleanly but left %s in its journal directory", ents[0].Name())
	}
}

// FuzzRoute calls route(dst, via=via) in a lab whose host is an anonymous
// namespace. dst is parsed as "default", an address or a prefix without
// host bits, via as an address; an error for a bad argument quotes it; a
// parsed destination appears in every later error; and whatever the
// kernel accepted is gone once the lab is closed.
func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{
		{"default", "10.0.0.1"}, {"default", "fd00::1"}, {"default", ""}, {"10.1.0.0/24", "10.0.0.1"},
		{"10.1.0.1/24", "10.0.0.1"}, {"10.1.0.7", "127.0.0.1"}, {"fd01::/64", "fd00::1"}, {"fd01::/64", "10.0.0.1"},
		{"10.1.0.0/24", ""}, {"10.1.0.0/24", "10.0.0.1/24"}, {"nope", "10.0.0.1"}, {"10.1.0.0/33", ""},
		{"fe80::1%lo", "::1"}, {"0.0.0.0/0", "::ffff:10.0.0.1"},
	} {
		f.Add(s[0], s[1], s[1] != "")
	}
	base := fzTempDir(f)
	f.Fuzz(func(t *testing.T, dst, via string, withVia bool) {
		if os.Geteuid() != 0 {
			testenv.Skipf(t, "needs root: the lab's host is an anonymous namespace")
		}
		ns, err := fzRouteNs()
		if err != nil {
			t.Fatal(err)
		}
		before := fzRoutes(t, ns)
		lab, r, dir := fzLab(t, base, ns)
		closed := false
		defer func() {
			if !closed {
				lab.Close()
			}
		}()
		g := r.Globals()
		g["DST"] = starlark.String(dst)
		g["VIA"] = starlark.None
		src := "route(DST)"
		if withVia {
			g["VIA"] = starlark.String(via)
			src = "route(DST, via = VIA)"
		}
		_, err = starlark.ExecFileOptions(FileOptions, r.Thread("fuzz.star"), "fuzz.star", src, g)
		msg := ""
		if err != nil {
			msg = err.Error()
		}

		want, bad, isBad := fzRouteModel(dst, via, withVia)
		switch {
		case isBad:
			if err == nil || !fzQuoted(msg, bad) {
				t.Fatalf("route(%q, via=%q): got %v, want an error quoting %q", dst, via, err, bad)
			}
		case !withVia:
			if err == nil || !strings.Contains(msg, want.String()) || !strings.Contains(msg, "via=") {
				t.Fatalf("route(%q) without via or dev: got %v, want an error naming %s and asking for via=", dst, err, want)
			}
		case err != nil:
			if !strings.Contains(msg, want.String()) {
				t.Fatalf("route(%q, via=%q): error %q does not name the destination %s", dst, via, msg, want)
			}
		default:
			if !fzHasRoute(t, ns, want) {
				t.Fatalf("route(%q, via=%q) succeeded, but there is no route to %s: %v", dst, via, want, fzRoutes(t, ns))
			}
		}
		closed = true
		fzCloseLab(t, lab, dir)
		if after := fzRoutes(t, ns); !slices.Equal(before, after) {
			t.Fatalf("route(%q, via=%q): routes before the lab\n%v\nand after it closed\n%v", dst, via, before, after)
		}
	})
}

// fzRouteModel is what route(dst, via=via) should make of its arguments:
// the destination, or the argument an error should quote.
func fzRouteModel(dst, via string, withVia bool) (p netip.Prefix, bad string, isBad bool) {
	// route() checks its arguments in order: dst, then via.
	dstBad := false
	switch {
	case dst == "default":
	case !strings.Contains(dst, "/"):
		a, err := netip.ParseAddr(dst)
		dstBad, p = err != nil, netip.PrefixFrom(a, a.BitLen())
	default:
		var err error
		p, err = netip.ParsePrefix(dst)
		dstBad = err != nil || p.Masked() != p
	}
	if dstBad {
		return netip.Prefix{}, dst, true
	}
	var gw netip.Addr
	if withVia {
		var err error
		if gw, err = netip.ParseAddr(via); err != nil {
			return netip.Prefix{}, via, true
		}
	}
	if dst != "default" {
		return p, "", false
	}
	if gw.Is6() {
		return netip.MustParsePrefix("::/0"), "", false
	}
	return netip.MustParsePrefix("0.0.0.0/0"), "", false
}

// fzAllowed are the builtins FuzzScript lets scripts reach as they are:
// their kernel work stays in the namespaces the fuzzer created, and with
// the run's context cancelled the traffic builtins fail before sending.
// Everything else is replaced: netns by fzSandbox.netns, sysctl by
// fzSandbox.sysctl, and exec, program and any builtin added later by an
// error.
var fzAllowed = map[string]bool{
	"veth_pair": true, "netkit_pair": true, "route": true, "forwarding": true,
	"attach": true, "stats": true, "ping": true, "expect_pass": true, "expect_drop": true, "fail": true,
}

// fzMaxPairs bounds the pairs one script may create, so that a loop
// cannot make an execution slow.
const fzMaxPairs = 8

// fzSandbox is the world of one FuzzScript execution.
type fzSandbox struct {
	run   *Run
	pool  []*datapath.Netns // anonymous namespaces netns() made
	names map[string]bool
	pairs int
}

// netns stands in for the real netns(): it checks the name as the lab
// does, then returns an anonymous namespace instead of a named one, so
// that an execution killed by the fuzzer leaves no name in /run/netns.
func (s *fzSandbox) netns(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	if err := datapath.CheckNetnsName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if name == "host" || s.names[name] {
		return nil, fmt.Errorf("%s: %q exists already", b.Name(), name)
	}
	if len(s.pool) == 3 {
		return nil, fmt.Errorf("%s: fuzzing allows 3 namespaces", b.Name())
	}
	ns, err := datapath.NewAnonNetns()
	if err != nil {
		return nil, err
	}
	s.pool = append(s.pool, ns)
	s.names[name] = true
	return s.run.wrapNetns(ns), nil
}

// sysctl passes keys under net.ipv4.conf and net.ipv6.conf, ip_forward,
// and keys outside net (which the real builtin refuses) to the real
// builtin, and refuses other net keys: a few net sysctls are not per
// namespace.
func (s *fzSandbox) sysctl(real starlark.Value) *starlark.Builtin {
	return starlark.NewBuiltin("sysctl", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var key starlark.Value = starlark.None
		if len(args) > 0 {
			key = args[0]
		}
		for _, kv := range kwargs {
			if kv[0] == starlark.String("key") {
				key = kv[1]
			}
		}
		k, _ := starlark.AsString(key)
		k = strings.ReplaceAll(k, "/", ".")
		if strings.HasPrefix(k, "net") && !strings.HasPrefix(k, "net.ipv4.conf.") && !strings.HasPrefix(k, "net.ipv6.conf.") && k != "net.ipv4.ip_forward" {
			return nil, fmt.Errorf("sysctl: %q is not allowed while fuzzing", k)
		}
		return starlark.Call(thread, real, args, kwargs)
	})
}

// pair counts pairs before calling the real veth_pair or netkit_pair.
func (s *fzSandbox) pair(real starlark.Value) *starlark.Builtin {
	name := real.(*starlark.Builtin).Name()
	return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if s.pairs == fzMaxPairs {
			return nil, fmt.Errorf("%s: fuzzing allows %d pairs", name, fzMaxPairs)
		}
		s.pairs++
		return starlark.Call(thread, real, args, kwargs)
	})
}

func fzUnavailable(name string) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return nil, fmt.Errorf("%s: not available while fuzzing", name)
	})
}

// globals are the run's globals with the builtins sandboxed.
func (s *fzSandbox) globals() starlark.StringDict {
	g := s.run.Globals()
	for name, v := range g {
		if _, ok := v.(*starlark.Builtin); !ok {
			continue
		}
		switch {
		case name == "netns":
			g[name] = starlark.NewBuiltin(name, s.netns)
		case name == "sysctl":
			g[name] = s.sysctl(v)
		case name == "veth_pair" || name == "netkit_pair":
			g[name] = s.pair(v)
		case !fzAllowed[name]:
			g[name] = fzUnavailable(name)
		}
	}
	return g
}

// fzLinks lists the names of the links in ns.
func fzLinks(t *testing.T, ns *datapath.Netns) []string {
	t.Helper()
	links, err := ns.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}

// fzScriptSeeds returns the scripts of the repository: scripts/,
// testdata/bench and the .star files inside testdata/script/*.txtar.
func fzScriptSeeds(f *testing.F) []string {
	var seeds []string
	files, _ := filepath.Glob("../scripts/*.star")
	bench, _ := filepath.Glob("../testdata/bench/*.star")
	for _, p := range append(files, bench...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	archives, _ := filepath.Glob("../testdata/script/*.txtar")
	for _, p := range archives {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// txtar: a "-- name --" line starts each file.
		var name string
		var body []string
		flush := func() {
			if strings.HasSuffix(name, ".star") {
				seeds = append(seeds, strings.Join(body, "\n"))
			}
			body = nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(line, "-- "); ok && strings.HasSuffix(n, " --") {
				flush()
				name = strings.TrimSuffix(n, " --")
				continue
			}
			body = append(body, line)
		}
		flush()
	}
	return seeds
}

// FuzzScript runs the input as a script in a lab whose host is a fresh
// anonymous namespace, with netns() handing out more anonymous namespaces,
// exec and program unavailable, no load(), a step limit, and the run's
// context cancelled (traffic builtins fail before sending). Whatever the
// script does: no panic, the lab closes without error and removes its
// journal, and no link is left in any of the namespaces.
func FuzzScript(f *testing.F) {
	for _, s := range fzScriptSeeds(f) {
		f.Add(s)
	}
	f.Add("p = veth_pair(\"a0\", \"a1\")\np.primary.addr(\"10.0.0.1/24\").up()\np.peer.addr(\"fd00::2/64\").up()\nroute(\"10.9.0.0/16\", dev = p.primary)\nping(\"10.0.0.1\")\n")
	f.Add("ns = netns(\"n\")\np = veth_pair(\"a0\", \"b0\", peer_ns = ns, mtu = 1400)\nsysctl(\"net.ipv4.conf.all.forwarding\", 1, ns = ns)\nforwarding(ns)\nroute(\"default\", via = \"10.0.0.1\", ns = ns)\n")
	f.Add("def f(n):\n    return f(n + 1)\nf(0)\n")
	f.Add("while True:\n    pass\n")
	base := fzTempDir(f)
	f.Fuzz(func(t *testing.T, src string) {
		if os.Geteuid() != 0 {
			testenv.Skipf(t, "needs root: the lab's host is an anonymous namespace")
		}
		host, err := datapath.NewAnonNetns()
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		lab, r, dir := fzLab(t, base, host)
		s := &fzSandbox{run: r, names: map[string]bool{}}
		closed := false
		defer func() {
			if !closed {
				lab.Close()
			}
			for _, ns := range s.pool {
				ns.Close()
			}
		}()
		thread := r.Thread("fuzz.star")
		thread.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("load is not available while fuzzing")
		}
		thread.SetMaxExecutionSteps(20000)
		_, runErr := starlark.ExecFileOptions(FileOptions, thread, "fuzz.star", src, s.globals())
		if runErr != nil && runErr.Error() == "" {
			t.Errorf("script failed with an empty error")
		}

		closed = true
		fzCloseLab(t, lab, dir)
		for i, ns := range append([]*datapath.Netns{host}, s.pool...) {
			if links := fzLinks(t, ns); !slices.Equal(links, []string{"lo"}) {
				t.Fatalf("links left in namespace %d of the script after the lab closed: %q (script error: %v)", i, links, runErr)
			}
		}
	})
}
