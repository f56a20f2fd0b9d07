package datapath

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nkscript/nkscript/bpf"
)

// shell is the Backend of --dry-run: it changes nothing and writes the
// shell commands (ip, sysctl, bpftool) that would build the same lab.
// Running its output with bash builds the lab and, on exit, removes what
// it built unless NKSCRIPT_KEEP=1. It hands out the recorder's stand-ins.
type shell struct {
	*recorder
	w       io.Writer
	wmu     sync.Mutex
	objects int
	ns      map[NsID]*Netns
	routes  map[string]string // route arguments by RouteSpec.String, for undo
	rules   map[string]string // rule deletions by RuleSpec.String, for undo
	clsacts shellClsacts
}

const shellHeader = `#!/bin/bash
# %s as shell commands, written by nkscript --dry-run.
# bash runs them; everything they create is removed when bash exits,
# unless NKSCRIPT_KEEP=1 is set. Lines starting with # are notes: the
# script's own output, and the steps no command here does: attaching to
# netkit hooks (bpftool has no netkit attach type), nkscript's own
# servers, clients and TCP/UDP checks (ICMP checks are pings), captures
# and traces.
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
# nk_ifindex NS DEV: the ifindex of device DEV in namespace NS ('' for
# this one), as the 4 bytes a map value holds (little-endian), looked up
# when the command runs.
nk_ifindex() {
	local i
	i=$(ip ${1:+-n "$1"} -o link show dev "$2") && i=${i%%%%:*}
	printf '%%02x %%02x %%02x %%02x' $((i & 255)) $((i >> 8 & 255)) $((i >> 16 & 255)) $((i >> 24 & 255))
}
NK_TMP=$(mktemp -d)
undo rm -rf "$NK_TMP"
NK_PIN=/sys/fs/bpf/nkscript-dry-$$
`

// NewShell returns the --dry-run backend, which writes the commands for
// the lab of script to w.
func NewShell(w io.Writer, script string) Backend {
	s := &shell{recorder: &recorder{ifindex: 1000}, w: w, ns: map[NsID]*Netns{}, routes: map[string]string{}, rules: map[string]string{}}
	desc := "An nkscript lab"
	if script != "" {
		desc = "The lab of " + script
	}
	fmt.Fprintf(w, shellHeader, desc)
	return s
}

// line writes one line: a command, or a comment when it starts with "#".
func (s *shell) line(format string, args ...any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintf(s.w, format+"\n", args...)
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

func (s *shell) CreateNetns(name string, record func(Record) error) (*Netns, error) {
	s.line("ip netns add %s", shq(name))
	ns, err := s.recorder.CreateNetns(name, record)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	s.ns[ns.id] = ns
	s.wmu.Unlock()
	s.line("ip -n %s link set lo up", shq(name))
	return ns, nil
}

func (s *shell) CreatePair(o PairOptions) (int, int, error) {
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
	if o.Kind == Netkit {
		cmd += netkitWords(o, peer)
	} else {
		cmd += " type veth peer " + peer
	}
	s.line("%s", cmd)
	return s.recorder.CreatePair(o)
}

// netkitWords is the rest of `ip link add` for a netkit pair.
func netkitWords(o PairOptions, peer string) string {
	policy := func(p string) string {
		if p == "drop" || p == "blackhole" {
			return "blackhole"
		}
		return "forward"
	}
	scrub := func(s string) string {
		if s == "" {
			return ""
		}
		return " scrub " + s
	}
	var cmd, room string
	if o.TxQueues != 0 {
		cmd += fmt.Sprintf(" numtxqueues %d", o.TxQueues)
	}
	if o.RxQueues != 0 {
		cmd += fmt.Sprintf(" numrxqueues %d", o.RxQueues)
	}
	if o.Headroom != 0 {
		room += fmt.Sprintf(" headroom %d", o.Headroom)
	}
	if o.Tailroom != 0 {
		room += fmt.Sprintf(" tailroom %d", o.Tailroom)
	}
	if o.PeerMTU != 0 {
		peer = strings.Replace(peer, fmt.Sprintf(" mtu %d", o.MTU), "", 1) + fmt.Sprintf(" mtu %d", o.PeerMTU)
	}
	return cmd + fmt.Sprintf(" type netkit mode %s %s%s%s peer %s%s %s", netkitModeName(o.Mode), policy(o.Policy), scrub(o.Scrub), room, policy(o.PeerPolicy), scrub(o.PeerScrub), peer)
}

func (s *shell) CreateBridge(ns *Netns, name string, mtu, index int) (int, error) {
	cmd := fmt.Sprintf("%s link add %s", ipn(ns), shq(name))
	if mtu != 0 {
		cmd += fmt.Sprintf(" mtu %d", mtu)
	}
	s.line("%s type bridge", cmd)
	return s.recorder.CreateBridge(ns, name, mtu, index)
}

func (s *shell) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	s.line("%s", d.shellCommand(ipn(ns)))
	return s.recorder.CreateDevice(ns, d)
}

// AddFDB writes the FDB entry that sends to remote, as `bridge fdb`.
func (s *shell) AddFDB(k *Link, remote netip.Addr) error {
	bridge := "bridge"
	if !k.ns.host {
		bridge = "bridge -n " + shq(k.ns.name)
	}
	s.line("%s fdb append 00:00:00:00:00:00 dev %s dst %s", bridge, shq(k.name), remote)
	return nil
}

func (s *shell) DeleteLink(k *Link) error {
	s.line("%s link del %s", ipn(k.ns), shq(k.name))
	s.dropUndo(k)
	if k.pair != nil {
		s.dropUndo(k.partner())
	}
	return nil
}

func (s *shell) MoveLink(k *Link, to *Netns) (int, error) {
	target := "1"
	if !to.host {
		target = shq(to.name)
	}
	s.line("%s link set %s netns %s", ipn(k.ns), shq(k.name), target)
	s.dropUndo(k)
	return s.recorder.MoveLink(k, to)
}

func (s *shell) DeleteNetns(ns *Netns) error {
	s.line("ip netns del %s", shq(ns.name))
	s.dropCommand("ip netns del " + ns.name)
	return nil
}

// dropUndo takes the deletion of k where it is now out of the commands
// bash runs on exit: the script deleted or moved it already.
func (s *shell) dropUndo(k *Link) {
	s.dropCommand(s.ipnOf(k.ns.id) + " link del " + k.name)
}

// dropCommand takes cmd, as undo stored it, out of $NK_UNDO.
func (s *shell) dropCommand(cmd string) {
	s.line("NK_UNDO=${NK_UNDO/%s/}", shq(cmd+"; "))
}

func (s *shell) AddAddr(k *Link, p netip.Prefix) error {
	nodad := ""
	if p.Addr().Is6() {
		nodad = " nodad"
	}
	s.line("%s addr add %s dev %s%s", ipn(k.ns), p, shq(k.name), nodad)
	return nil
}

func (s *shell) SetUp(k *Link, up bool) error {
	s.line("%s link set %s %s", ipn(k.ns), shq(k.name), upDown(up))
	return nil
}

func (s *shell) SetMaster(k, br *Link) error {
	s.line("%s link set %s %s", ipn(k.ns), shq(k.name), masterWords(br))
	return nil
}

func (s *shell) SetMTU(k *Link, mtu int) error {
	s.line("%s link set %s mtu %d", ipn(k.ns), shq(k.name), mtu)
	return nil
}

func (s *shell) SetMAC(k *Link, mac net.HardwareAddr) error {
	s.line("%s link set %s address %s", ipn(k.ns), shq(k.name), mac)
	return nil
}

func (s *shell) AddRoute(ns *Netns, r RouteSpec) error {
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
	s.line("%s route add %s", ipn(ns), args)
	s.wmu.Lock()
	s.routes[r.String()] = args
	s.wmu.Unlock()
	return s.recorder.AddRoute(ns, r)
}

func (s *shell) DeleteRoute(ns *Netns, r RouteSpec) error {
	s.wmu.Lock()
	args := s.routes[r.String()]
	s.wmu.Unlock()
	s.line("%s route del %s", ipn(ns), args)
	return s.recorder.DeleteRoute(ns, r)
}

// ipRule is `ip rule` for r's family in ns.
func ipRule(ns *Netns, r RuleSpec) string {
	if r.V6() {
		return ipn(ns) + " -6 rule"
	}
	return ipn(ns) + " rule"
}

func (s *shell) AddRule(ns *Netns, r RuleSpec) error {
	s.line("%s add %s", ipRule(ns, r), shellWords(r.words()))
	s.wmu.Lock()
	s.rules[r.String()] = fmt.Sprintf("%s del %s", ipRule(ns, r), shellWords(r.words()))
	s.wmu.Unlock()
	return s.recorder.AddRule(ns, r)
}

func (s *shell) DeleteRule(ns *Netns, r RuleSpec) error {
	s.line("%s del %s", ipRule(ns, r), shellWords(r.words()))
	return s.recorder.DeleteRule(ns, r)
}

// shellWords quotes words for the shell and joins them.
func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shq(w)
	}
	return strings.Join(q, " ")
}

func (s *shell) WriteSysctl(ns *Netns, key, _, value string) error {
	s.line("%ssysctl -qw %s", inNs(ns), shq(key+"="+value))
	return nil
}

// LoadProgram writes the program's object, with its constants set, as a
// here-document, and loads it with bpftool, pinning its programs and maps
// under $NK_PIN.
func (s *shell) LoadProgram(spec ProgramSpec) (*Program, error) {
	p, err := s.recorder.LoadProgram(spec)
	if err != nil {
		return nil, err
	}
	obj, fn, err := shellObject(spec, p.name)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	s.objects++
	n := s.objects
	s.wmu.Unlock()
	dir := fmt.Sprintf("$NK_PIN/%d", n)
	s.line("# program %s (%d bytes of ELF)", p.name, len(obj))
	s.line("base64 -d > \"$NK_TMP/%d.o\" <<'EOF'", n)
	enc := base64.StdEncoding.EncodeToString(obj)
	for len(enc) > 76 {
		s.line("%s", enc[:76])
		enc = enc[76:]
	}
	s.line("%s\nEOF", enc)
	if n == 1 {
		s.line("mountpoint -q /sys/fs/bpf || { mount -t bpf bpf /sys/fs/bpf; undo umount /sys/fs/bpf; }")
		s.line("mkdir -p \"$NK_PIN\"")
		s.line("undo rm -rf \"$NK_PIN\"")
	}
	s.line("mkdir -p %s/maps", dir)
	s.line("bpftool prog loadall \"$NK_TMP/%d.o\" %s pinmaps %s/maps", n, dir, dir)
	p.impl = &shellProg{sh: s, pin: dir + "/" + fn}
	return p, nil
}

// shellObject returns the ELF object of spec with its constants set, and
// the name bpftool pins the program under.
func shellObject(spec ProgramSpec, name string) ([]byte, string, error) {
	var obj []byte
	var err error
	fn := name
	if spec.Name != "" {
		if obj, err = bpf.Object(spec.Name); err != nil {
			return nil, "", fmt.Errorf("load program: %w", err)
		}
		fn, _ = bpf.Function(spec.Name)
	} else if obj, err = os.ReadFile(spec.Path); err != nil {
		return nil, "", fmt.Errorf("load program %s: %w", spec.Path, err)
	}
	if obj, err = patchConsts(obj, spec); err != nil {
		return nil, "", fmt.Errorf("load program %s: %w", name, err)
	}
	return obj, fn, nil
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
		for _, sym := range syms {
			if sym.Name != name || int(sym.Section) >= len(f.Sections) {
				continue
			}
			sec := f.Sections[sym.Section]
			off := sec.Offset + sym.Value
			if sec.Type == elf.SHT_NOBITS || off+uint64(len(v.Value)) > uint64(len(out)) {
				return nil, fmt.Errorf("constant %q is not stored in the object", name)
			}
			copy(out[off:], v.Value)
		}
	}
	return out, nil
}

func (s *shell) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	a, err := s.recorder.Attach(p, target, hook, opts)
	if err != nil {
		return nil, err
	}
	pin := p.impl.(*shellProg).pin
	switch {
	case opts.Mechanism == MechTC:
		if a.mech, err = s.attachTC(a, p, target, hook, opts, pin); err != nil {
			return nil, err
		}
		return a, nil
	case hook == HookXDP && opts.XDPMode != XDPAuto:
		s.line("%sip link set dev %s %s pinned %s", inNs(target.ns), shq(target.name), opts.XDPMode.ipXDPMode(), pin)
	case hook == HookXDP:
		s.line("%sbpftool net attach xdp pinned %s dev %s", inNs(target.ns), pin, shq(target.name))
	case hook == HookIngress, hook == HookEgress:
		s.line("%sbpftool net attach tcx_%s pinned %s dev %s", inNs(target.ns), hook, pin, shq(target.name))
	default:
		s.line("# attach %s to netkit %s of %s: bpftool (7.5) cannot attach netkit programs;", p.name, hook, target.name)
		s.line("# a loader must: link.AttachNetkit(ifindex of %s, %s, ebpf.AttachNetkit%s)", target.name, pin, strings.ToUpper(hook.String()[:1])+hook.String()[1:])
	}
	a.mech = &shellAttach{sh: s, dev: target, hook: hook, mode: opts.XDPMode}
	return a, nil
}

func (s *shell) Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error) {
	opt := ""
	if opts.TTL != 0 && opts.TTL != 64 {
		opt = fmt.Sprintf(" -t %d", opts.TTL)
	}
	s.line("%sping -c %d -W 1%s %s >/dev/null 2>&1 || echo \"ping %s from %s failed (or ping is not installed)\" >&2", inNs(src), opts.Count, opt, dst, dst, src.name)
	return s.recorder.Ping(ctx, src, dst, opts)
}

// Probe writes what an expectation would check: ICMP as ping, TCP and
// UDP, which need a listener, as a comment.
func (s *shell) Probe(ctx context.Context, o ProbeOptions, pass bool) (ProbeResult, error) {
	switch {
	case o.Proto == "icmp" && pass:
		s.line("%sping -c 1 -W 1 %s >/dev/null 2>&1 || echo \"expected icmp %s -> %s to pass (is ping installed?)\" >&2", inNs(o.Src), o.Dst, o.Src.name, o.Dst)
	case o.Proto == "icmp":
		s.line("! %sping -c 1 -W 1 %s >/dev/null 2>&1 || echo \"expected icmp %s -> %s to be dropped\" >&2", inNs(o.Src), o.Dst, o.Src.name, o.Dst)
	default:
		verdict := "pass"
		if !pass {
			verdict = "be dropped"
		}
		s.line("# expect %s %s -> %s:%d to %s (nkscript checks it with its own listener)", o.Proto, o.Src.name, o.Dst, o.Port, verdict)
	}
	return s.recorder.Probe(ctx, o, pass)
}

func (s *shell) Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error) {
	s.line("# connect %s %s -> %s (nkscript's own client)", proto, src.name, dst)
	return s.recorder.Connect(ctx, src, proto, dst, timeout)
}

func (s *shell) Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	s.line("# serve %s port %d in %s, answering %q (nkscript's own server)", proto, port, ns.name, reply)
	return s.recorder.Serve(ns, proto, port, reply)
}

// Exec writes the command, run in ns.
func (s *shell) Exec(ctx context.Context, ns *Netns, argv []string) (string, error) {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shq(a)
	}
	prefix := ""
	if !ns.host {
		prefix = "ip netns exec " + shq(ns.name) + " "
	}
	s.line("%s%s", prefix, strings.Join(q, " "))
	return s.recorder.Exec(ctx, ns, argv)
}

func (s *shell) Capture(c CaptureSpec) (*Capture, error) {
	w := ""
	if c.Pcap != "" {
		w = " -w " + shq(c.Pcap)
	}
	for _, k := range c.Links {
		s.line("# capture on %s in %s (tcpdump -i %s%s)", k.name, k.ns.name, k.name, w)
	}
	for _, dev := range c.HostDevices {
		s.line("# capture on %s in host (tcpdump -i %s%s)", dev, dev, w)
	}
	return s.recorder.Capture(c)
}

func (s *shell) Trace(record func(Record) error) (*Tracer, error) {
	s.line("# trace: bpf_printk lines: cat %s/trace_pipe", TraceFSDir)
	return s.recorder.Trace(record)
}

// Note writes text as comment lines.
func (s *shell) Note(text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		s.line("# %s", line)
	}
}

// Pause notes what the script says where it would stop.
func (s *shell) Pause(says string) bool {
	s.Note(says)
	return false
}

// Check notes the script's check and goes on: the checks of a dry run
// see made-up results.
func (s *shell) Check(pos, msg string) error {
	s.Note(fmt.Sprintf("the script checks here (%s): fail(%q) unless it holds", pos, msg))
	return nil
}

// Journal returns the shell itself: it writes each record's undo as an
// `undo` command, which bash runs on exit.
func (s *shell) Journal(dir, script string, host NsID) (journal, error) {
	return s, nil
}

// Append writes the undo command of r.
func (s *shell) Append(r Record) (int, error) {
	switch r := r.(type) {
	case *NetnsRecord:
		s.line("undo ip netns del %s", shq(r.Name))
	case *LinkRecord:
		s.line("undo %s link del %s", s.ipnOf(r.NS), shq(r.Name))
	case *RouteRecord:
		s.wmu.Lock()
		args := s.routes[r.Route]
		s.wmu.Unlock()
		s.line("undo %s route del %s", s.ipnOf(r.NS), args)
	case *SysctlRecord:
		s.line("undo sysctl -qw %s", shq(r.Key+"="+r.Old))
	case *RuleRecord:
		s.wmu.Lock()
		undo := s.rules[r.Rule]
		s.wmu.Unlock()
		s.line("undo %s", undo)
	}
	return 0, nil
}

func (s *shell) ipnOf(id NsID) string {
	s.wmu.Lock()
	ns := s.ns[id]
	s.wmu.Unlock()
	if ns == nil {
		return "ip"
	}
	return ipn(ns)
}

func (s *shell) Undone(int) error { return nil }
func (s *shell) Path() string     { return "" }
func (s *shell) Remove() error    { return nil }

// shellProg is a program bpftool loads and pins at pin.
type shellProg struct {
	standIn
	sh  *shell
	pin string
}

func (p *shellProg) mapStore(name string) (mapStore, error) {
	return &shellMap{sh: p.sh, pin: p.pin[:strings.LastIndexByte(p.pin, '/')] + "/maps/" + name}, nil
}

// shellMap writes map updates as bpftool commands on its pin.
type shellMap struct {
	standIn
	sh  *shell
	pin string
}

func (sm *shellMap) put(m *Map, _ any, kb []byte, v any, refs []ifindexRef) error {
	vb, err := m.valueBytes(v)
	if err != nil {
		return err
	}
	return sm.putBytes(m, kb, vb, refs)
}

// putBytes writes the update; the ifindexes at refs are looked up when
// the commands run, since the devices' ifindexes are not known before.
func (sm *shellMap) putBytes(_ *Map, kb, vb []byte, refs []ifindexRef) error {
	sm.sh.line("bpftool map update pinned %s key hex %s value hex %s", sm.pin, hexBytes(kb), hexWithRefs(vb, refs))
	return nil
}

func (sm *shellMap) delete(m *Map, _ any, kb []byte) (bool, error) { return sm.deleteBytes(m, kb) }

func (sm *shellMap) deleteBytes(_ *Map, kb []byte) (bool, error) {
	sm.sh.line("bpftool map delete pinned %s key hex %s", sm.pin, hexBytes(kb))
	return true, nil
}

// hexWithRefs is hexBytes with the 4 bytes at each ref replaced by a
// lookup of the device's ifindex (nk_ifindex, in the script's header).
func hexWithRefs(b []byte, refs []ifindexRef) string {
	var parts []string
	for i := 0; i < len(b); {
		j := slices.IndexFunc(refs, func(r ifindexRef) bool { return r.off == i })
		if j < 0 || i+4 > len(b) {
			parts = append(parts, hex.EncodeToString(b[i:i+1]))
			i++
			continue
		}
		ns := ""
		if k := refs[j].link; !k.ns.host {
			ns = k.ns.name
		}
		parts = append(parts, fmt.Sprintf("$(nk_ifindex %s %s)", shq(ns), shq(refs[j].link.name)))
		i += 4
	}
	return strings.Join(parts, " ")
}

func hexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = hex.EncodeToString([]byte{x})
	}
	return strings.Join(parts, " ")
}

// shellAttach is a program bpftool attached; detaching writes the
// command. At the end of the script bash's undo removes it with its
// namespace.
type shellAttach struct {
	standIn
	sh   *shell
	dev  *Link
	hook Hook
	mode XDPMode
}

func (a *shellAttach) detach() error {
	switch {
	case a.hook == HookIngress, a.hook == HookEgress:
		a.sh.line("%sbpftool net detach tcx_%s dev %s", inNs(a.dev.ns), a.hook, shq(a.dev.name))
	case a.hook == HookXDP && a.mode != XDPAuto:
		a.sh.line("%sip link set dev %s %s off", inNs(a.dev.ns), shq(a.dev.name), a.mode.ipXDPMode())
	case a.hook == HookXDP:
		a.sh.line("%sbpftool net detach xdp dev %s", inNs(a.dev.ns), shq(a.dev.name))
	}
	return nil
}

// Show notes the commands that show the lab and reports what it
// recorded.
func (s *shell) Show(nss []*Netns, known ShowKnown) (Snapshot, error) {
	for _, ns := range nss {
		bpftool := "bpftool net show"
		if !ns.host {
			bpftool = "ip netns exec " + shq(ns.name) + " " + bpftool
		}
		s.line("# show %s: %s -d link; %s addr; %s route; %s rule; %s", ns.name, ipn(ns), ipn(ns), ipn(ns), ipn(ns), bpftool)
	}
	return s.recorder.Show(nss, known)
}
