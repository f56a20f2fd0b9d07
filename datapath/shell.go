package datapath

import (
	"bytes"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/bpf"
)

// A dry-run lab changes nothing: each operation writes the shell commands
// (ip, sysctl, bpftool) that would do the same to its writer and returns
// a stand-in object. Running the output with bash builds the same lab and,
// on exit, removes what it built unless NKSCRIPT_KEEP=1.

type shell struct {
	w       io.Writer
	mu      sync.Mutex
	ifindex int
	nsIno   uint64
	objects int
}

const shellHeader = `#!/bin/bash
# %s as shell commands, written by nkscript --dry-run.
# bash runs them; everything they create is removed when bash exits,
# unless NKSCRIPT_KEEP=1 is set.
set -euo pipefail
NK_UNDO=""
undo() { NK_UNDO="$*; $NK_UNDO"; }
nk_cleanup() {
	local rc=$?
	set +e
	if [ -z "${NKSCRIPT_KEEP:-}" ]; then eval "$NK_UNDO"; fi
	exit $rc
}
trap nk_cleanup EXIT
NK_TMP=$(mktemp -d)
undo rm -rf "$NK_TMP"
NK_PIN=/sys/fs/bpf/nkscript-dry-$$
`

// DryRun reports whether the lab only writes shell commands.
func (l *Lab) DryRun() bool { return l.sh != nil }

// Shell writes a line to a dry-run lab's output: a command, or a comment
// when it starts with "#". It does nothing for a lab that is not dry.
func (l *Lab) Shell(format string, args ...any) {
	if l.sh == nil {
		return
	}
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	fmt.Fprintf(l.sh.w, format+"\n", args...)
}

// Comment writes text as shell comment lines to a dry-run lab's output.
func (l *Lab) Comment(text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		l.Shell("# %s", line)
	}
}

func newDryLab(cfg LabConfig) (*Lab, error) {
	host, err := HostNetns()
	if err != nil {
		return nil, err
	}
	sh := &shell{w: cfg.DryRun, ifindex: 1000}
	fmt.Fprintf(sh.w, shellHeader, describeScript(cfg.Script))
	return &Lab{
		host:    host,
		ownHost: true,
		owned:   map[NsID]*Netns{},
		byName:  map[string]*Netns{},
		pendUp:  map[*Link]linkWait{},
		prefix:  cfg.Prefix,
		sh:      sh,
	}, nil
}

func describeScript(s string) string {
	if s == "" {
		return "An nkscript lab"
	}
	return "The lab of " + s
}

// shq quotes s for the shell when it needs it.
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ipn is "ip" or "ip -n NAME" for commands in ns.
func ipn(ns *Netns) string {
	if ns.host {
		return "ip"
	}
	return "ip -n " + shq(ns.name)
}

// inNs prefixes a command that must run inside ns: nsenter keeps /sys
// (and so /sys/fs/bpf) as it is, which `ip netns exec` does not.
func inNs(ns *Netns) string {
	if ns.host {
		return ""
	}
	return "nsenter --net=/run/netns/" + shq(ns.name) + " "
}

func (l *Lab) dryNetns(name string) *Netns {
	l.sh.mu.Lock()
	l.sh.nsIno++
	ino := l.sh.nsIno
	l.sh.mu.Unlock()
	ns := &Netns{name: name, path: NetnsDir + "/" + name, id: NsID{Dev: 0, Ino: ino}}
	l.Shell("ip netns add %s", shq(name))
	l.Shell("undo ip netns del %s", shq(name))
	l.Shell("ip -n %s link set lo up", shq(name))
	return ns
}

func (l *Lab) dryIndex() int {
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	l.sh.ifindex++
	return l.sh.ifindex
}

func (l *Lab) dryPair(o PairOptions, pair *Pair) {
	cmd := fmt.Sprintf("%s link add %s", ipn(o.PrimaryNs), shq(o.Primary))
	if o.MTU != 0 {
		cmd += fmt.Sprintf(" mtu %d", o.MTU)
	}
	peer := "name " + shq(o.Peer)
	if o.MTU != 0 {
		peer += fmt.Sprintf(" mtu %d", o.MTU)
	}
	if o.PeerNs != o.PrimaryNs {
		if o.PeerNs.host {
			peer += " netns 1"
		} else {
			peer += " netns " + shq(o.PeerNs.name)
		}
	}
	switch o.Kind {
	case Netkit:
		policy := func(p string) string {
			if p == "drop" || p == "blackhole" {
				return "blackhole"
			}
			return "forward"
		}
		if o.TxQueues != 0 {
			cmd += fmt.Sprintf(" numtxqueues %d", o.TxQueues)
		}
		if o.RxQueues != 0 {
			cmd += fmt.Sprintf(" numrxqueues %d", o.RxQueues)
		}
		room := ""
		if o.Headroom != 0 {
			room += fmt.Sprintf(" headroom %d", o.Headroom)
		}
		if o.Tailroom != 0 {
			room += fmt.Sprintf(" tailroom %d", o.Tailroom)
		}
		scrub := func(s string) string {
			if s == "" {
				return ""
			}
			return " scrub " + s
		}
		if o.PeerMTU != 0 {
			peer = strings.Replace(peer, fmt.Sprintf(" mtu %d", o.MTU), "", 1) + fmt.Sprintf(" mtu %d", o.PeerMTU)
		}
		cmd += fmt.Sprintf(" type netkit mode %s %s%s%s peer %s%s %s", pair.Mode, policy(o.Policy), scrub(o.Scrub), room, policy(o.PeerPolicy), scrub(o.PeerScrub), peer)
	default:
		cmd += " type veth peer " + peer
	}
	l.Shell("%s", cmd)
	for _, k := range []struct {
		name string
		ns   *Netns
	}{{o.Primary, o.PrimaryNs}, {o.Peer, o.PeerNs}} {
		if l.owned[k.ns.id] != k.ns {
			l.Shell("undo %s link del %s", ipn(k.ns), shq(k.name))
			break
		}
	}
	pair.Primary = &Link{ns: o.PrimaryNs, index: l.dryIndex(), name: o.Primary, pair: pair, prim: true}
	pair.Peer = &Link{ns: o.PeerNs, index: l.dryIndex(), name: o.Peer, pair: pair}
	l.links = append(l.links, pair.Primary, pair.Peer)
}

func (l *Lab) dryRoute(ns *Netns, r RouteSpec) {
	args := r.Dst.String()
	if r.Dst.Bits() == 0 {
		args = "default"
		if r.Dst.Addr().Is6() {
			args = "-6 default"
		}
	}
	if r.Via.IsValid() {
		args += " via " + r.Via.String()
	}
	if r.Dev != nil {
		args += " dev " + shq(r.Dev.name)
	}
	if r.Table != 0 {
		args += fmt.Sprintf(" table %d", r.Table)
	}
	l.Shell("%s route add %s", ipn(ns), args)
	if !l.Owns(ns) {
		l.Shell("undo %s route del %s", ipn(ns), args)
	}
}

func (l *Lab) drySysctl(ns *Netns, key, value string) {
	if ns.host {
		if old, err := ReadSysctl(ns, key); err == nil && old != value {
			l.Shell("undo sysctl -qw %s", shq(key+"="+old))
		}
	}
	l.Shell("%ssysctl -qw %s", inNs(ns), shq(key+"="+value))
}

// dryProgram writes the program's object, with its constants set, as a
// here-document, and loads it with bpftool, pinning its programs and
// maps under $NK_PIN.
func (l *Lab) dryProgram(spec ProgramSpec) (*Program, error) {
	var obj []byte
	var err error
	fn := ""
	name := spec.Name
	if spec.Name != "" {
		if obj, err = bpf.Object(spec.Name); err != nil {
			return nil, fmt.Errorf("load program: %w", err)
		}
		fn, _ = bpf.Function(spec.Name)
	} else {
		if obj, err = os.ReadFile(spec.Path); err != nil {
			return nil, fmt.Errorf("load program %s: %w", spec.Path, err)
		}
	}
	coll, selected, err := programCollection(spec)
	if err != nil {
		return nil, err
	}
	if fn == "" {
		fn, name = selected, selected
	}
	if obj, err = patchConsts(obj, spec); err != nil {
		return nil, fmt.Errorf("load program %s: %w", name, err)
	}
	l.sh.mu.Lock()
	l.sh.objects++
	n := l.sh.objects
	l.sh.mu.Unlock()
	dir := fmt.Sprintf("$NK_PIN/%d", n)
	l.Shell("# program %s (%d bytes of ELF)", name, len(obj))
	l.Shell("base64 -d > \"$NK_TMP/%d.o\" <<'EOF'", n)
	enc := base64.StdEncoding.EncodeToString(obj)
	for len(enc) > 76 {
		l.Shell("%s", enc[:76])
		enc = enc[76:]
	}
	l.Shell("%s\nEOF", enc)
	if n == 1 {
		l.Shell("mountpoint -q /sys/fs/bpf || { mount -t bpf bpf /sys/fs/bpf; undo umount /sys/fs/bpf; }")
		l.Shell("mkdir -p \"$NK_PIN\"")
		l.Shell("undo rm -rf \"$NK_PIN\"")
	}
	l.Shell("mkdir -p %s/maps", dir)
	l.Shell("bpftool prog loadall \"$NK_TMP/%d.o\" %s pinmaps %s/maps", n, dir, dir)
	p := &Program{name: name, typ: ebpf.SchedCLS, dry: true, pin: dir + "/" + fn, specs: coll.Maps, lab: l}
	l.progs = append(l.progs, p)
	return p, nil
}

// patchConsts writes the spec's constants into the object's .rodata, so
// that bpftool loads what nkscript would.
func patchConsts(obj []byte, spec ProgramSpec) ([]byte, error) {
	if len(spec.Consts) == 0 && len(spec.AddrConsts) == 0 {
		return obj, nil
	}
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, err
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	// Let the loader check names and ranges first, as a real run would.
	coll, _, err := programCollection(spec)
	if err != nil {
		return nil, err
	}
	if err := setAddrConsts(coll, spec.AddrConsts); err != nil {
		return nil, err
	}
	if err := setConsts(coll, spec.Consts); err != nil {
		return nil, err
	}
	out := slices.Clone(obj)
	for name, v := range coll.Variables {
		_, isInt := spec.Consts[name]
		_, isAddr := spec.AddrConsts[name]
		if !isInt && !isAddr {
			continue
		}
		val := v.Value
		for _, s := range syms {
			if s.Name != name || int(s.Section) >= len(f.Sections) {
				continue
			}
			sec := f.Sections[s.Section]
			off := sec.Offset + s.Value
			if sec.Type == elf.SHT_NOBITS || off+uint64(len(val)) > uint64(len(out)) {
				return nil, fmt.Errorf("constant %q is not stored in the object", name)
			}
			copy(out[off:], val)
		}
	}
	return out, nil
}

func (l *Lab) dryAttach(p *Program, target *Link, hook Hook) *Attachment {
	a := &Attachment{hook: hook, prog: p.name, ifindex: target.index, dev: target, dry: l, on: target}
	switch hook {
	case HookXDP:
		l.Shell("%sbpftool net attach xdp pinned %s dev %s", inNs(target.ns), p.pin, shq(target.name))
	case HookIngress, HookEgress:
		l.Shell("%sbpftool net attach tcx_%s pinned %s dev %s", inNs(target.ns), hook, p.pin, shq(target.name))
	default:
		l.Shell("# attach %s to netkit %s of %s: bpftool (7.5) cannot attach netkit programs;", p.name, hook, target.name)
		l.Shell("# a loader must: link.AttachNetkit(ifindex of %s, %s, ebpf.AttachNetkit%s)", target.name, p.pin, strings.ToUpper(hook.String()[:1])+hook.String()[1:])
	}
	l.attached = append(l.attached, a)
	return a
}

// dryMapUpdate writes m[k] = v as a bpftool map update.
func (m *Map) dryUpdate(kb, vb []byte) {
	m.lab.Shell("bpftool map update pinned %s key hex %s value hex %s", m.pin, hexBytes(kb), hexBytes(vb))
}

func (m *Map) dryDelete(kb []byte) {
	m.lab.Shell("bpftool map delete pinned %s key hex %s", m.pin, hexBytes(kb))
}

func hexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = hex.EncodeToString([]byte{x})
	}
	return strings.Join(parts, " ")
}

// DryPing writes what ping() would check.
func (l *Lab) DryPing(src *Netns, dst netip.Addr, count, ttl int) {
	opt := ""
	if ttl != 0 && ttl != 64 {
		opt = fmt.Sprintf(" -t %d", ttl)
	}
	l.Shell("%sping -c %d -W 1%s %s >/dev/null 2>&1 || echo \"ping %s from %s failed (or ping is not installed)\" >&2", inNs(src), count, opt, dst, dst, src.name)
}

// DryExpect writes what an expectation would check: ICMP as ping, TCP
// and UDP, which need a listener, as a comment.
func (l *Lab) DryExpect(proto string, src *Netns, dst netip.Addr, port int, pass bool) {
	verdict := "pass"
	if !pass {
		verdict = "be dropped"
	}
	if proto == "icmp" {
		if pass {
			l.Shell("%sping -c 1 -W 1 %s >/dev/null 2>&1 || echo \"expected icmp %s -> %s to pass (is ping installed?)\" >&2", inNs(src), dst, src.name, dst)
		} else {
			l.Shell("! %sping -c 1 -W 1 %s >/dev/null 2>&1 || echo \"expected icmp %s -> %s to be dropped\" >&2", inNs(src), dst, src.name, dst)
		}
		return
	}
	l.Shell("# expect %s %s -> %s:%d to %s (nkscript checks it with its own listener)", proto, src.name, dst, port, verdict)
}

// DryExec writes a command run in ns.
func (l *Lab) DryExec(ns *Netns, argv []string) {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shq(a)
	}
	prefix := ""
	if !ns.host {
		prefix = "ip netns exec " + shq(ns.name) + " "
	}
	l.Shell("%s%s", prefix, strings.Join(q, " "))
}

// dryOwning finds the namespace holding addr among the addresses the
// dry run gave its links.
func (l *Lab) dryOwning(addr netip.Addr) (*Netns, error) {
	var found []*Netns
	links := append(l.Links(), l.loopbacks()...)
	for _, k := range links {
		for _, p := range k.Addrs() {
			if p.Addr() == addr && !slices.Contains(found, k.ns) {
				found = append(found, k.ns)
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no namespace of this lab has the address %s; add it with link.addr()", addr)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("address %s is in several namespaces; it must be unique", addr)
}

func (l *Lab) loopbacks() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Link
	for _, ns := range l.nslist {
		if k, ok := l.lo[ns]; ok {
			out = append(out, k)
		}
	}
	return out
}
