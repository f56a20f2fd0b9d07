package datapath

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"golang.org/x/sys/unix"

	"github.com/nkscript/nkscript/bpf"
	"github.com/nkscript/nkscript/internal/btfcodec"
)

// ErrNoStats is returned by Program.Stats when the program's object has no
// map named "stats" of the shape the bundled programs use: an array or
// per-CPU array of at least three __u64 values indexed by __u32.
var ErrNoStats = errors.New("program has no stats map")

// verifierLogLines is how many lines from the end of the verifier log a
// load error includes.
const verifierLogLines = 8

// ProgramSpec says which BPF program to load and how to configure it.
// Exactly one of Name and Path must be set.
type ProgramSpec struct {
	// Name of a bundled program, see bpf.Names.
	Name string
	// Path of an ELF object file compiled for BPF.
	Path string
	// Section selects the program in the object at Path, by ELF section
	// name or by function name. It may be empty if the object holds
	// exactly one program. Unused with Name.
	Section string
	// Consts sets `volatile const` globals before loading, by name. Each
	// value must fit the variable's type as described by its BTF.
	Consts map[string]int64
	// AddrConsts sets constants that hold an IP address: a 4-byte array
	// or __be32 takes an IPv4 address, a 16-byte array an IPv6 one, in
	// network byte order.
	AddrConsts map[string]netip.Addr
}

// Stats are a program's packet counters, summed over all CPUs.
type Stats struct {
	Passed     uint64
	Dropped    uint64
	Redirected uint64
}

// Program is a BPF program loaded into the kernel. Nothing is pinned:
// closing it, or the process exiting, unloads it once no attachment
// holds it.
type Program struct {
	name string
	id   uint32
	typ  ebpf.ProgramType

	mu    sync.Mutex
	coll  *ebpf.Collection
	prog  *ebpf.Program
	stats *ebpf.Map // nil if the object has no compatible stats map
	specs map[string]*ebpf.MapSpec

	// A dry run's stand-in: where bpftool pins it, and its lab.
	dry bool
	pin string
	lab *Lab
}

// removeMemlock lifts RLIMIT_MEMLOCK, which kernels before 5.11 charge
// BPF maps and programs to; later kernels charge the memory cgroup
// instead. It is done once, when the first object is loaded, rather than
// through cilium/ebpf's rlimit package, whose import alone costs every
// run a BPF probe at startup (0.3 ms). It is best effort: where raising
// the limit is not allowed, a kernel that needs it refuses the load, and
// cilium/ebpf's error then names MEMLOCK.
var removeMemlock = sync.OnceValue(func() error {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &cur); err == nil && cur.Cur == unix.RLIM_INFINITY {
		return nil
	}
	inf := &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, inf); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove memlock limit: %w", err)
	}
	return nil
})

// LoadProgram loads the program spec describes into the kernel, after
// setting its constants. Only SchedCLS programs can be loaded: they are
// the ones tcx and netkit accept.
func LoadProgram(spec ProgramSpec) (*Program, error) {
	coll, fn, err := programCollection(spec)
	if err != nil {
		return nil, err
	}
	name, label := fn, fmt.Sprintf("%s in %s", fn, spec.Path)
	if spec.Name != "" {
		name, label = spec.Name, spec.Name
	}
	ps := coll.Programs[fn]
	if ps.Type != ebpf.SchedCLS && ps.Type != ebpf.XDP {
		return nil, fmt.Errorf("load program %s: program %q (section %q) has type %s, but only SchedCLS programs (SEC(\"tc\"), SEC(\"tcx/ingress\"), ...), for tcx and netkit hooks, and XDP programs (SEC(\"xdp\")) can be attached",
			label, fn, ps.SectionName, ps.Type)
	}
	// Load only the selected program: the others may be of types the
	// kernel or the verifier would refuse.
	for name := range coll.Programs {
		if name != fn {
			delete(coll.Programs, name)
		}
	}
	if err := setAddrConsts(coll, spec.AddrConsts); err != nil {
		return nil, fmt.Errorf("load program %s: %w", label, err)
	}
	if err := setConsts(coll, spec.Consts); err != nil {
		return nil, fmt.Errorf("load program %s: %w", label, err)
	}
	if err := removeMemlock(); err != nil {
		return nil, fmt.Errorf("load program %s: %w", label, err)
	}

	c, err := ebpf.NewCollection(coll)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, &verifierError{prog: label, err: ve}
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("load program %s: %w: %w", label, ErrNotSupported, err)
		}
		return nil, fmt.Errorf("load program %s: %w", label, err)
	}
	p := &Program{name: name, typ: ps.Type, coll: c, prog: c.Programs[fn], specs: coll.Maps}
	info, err := p.prog.Info()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("load program %s: program info: %w", label, err)
	}
	id, ok := info.ID()
	if !ok {
		c.Close()
		return nil, fmt.Errorf("load program %s: kernel reports no program ID: %w", label, ErrNotSupported)
	}
	p.id = uint32(id)
	if m := c.Maps[bpf.StatsMap]; m != nil && statsCompatible(m) {
		p.stats = m
	}
	return p, nil
}

// programCollection returns the spec of the object spec names and the name
// of the selected program in it.
func programCollection(spec ProgramSpec) (*ebpf.CollectionSpec, string, error) {
	switch {
	case spec.Name != "" && spec.Path != "":
		return nil, "", fmt.Errorf("load program: give a bundled name (%q) or a path (%q), not both", spec.Name, spec.Path)
	case spec.Name != "":
		if spec.Section != "" {
			return nil, "", fmt.Errorf("load program %s: a section can only be chosen in an object file, not in a bundled program", spec.Name)
		}
		coll, err := bpf.Spec(spec.Name)
		if err != nil {
			return nil, "", fmt.Errorf("load program: %w", err)
		}
		fn, err := bpf.Function(spec.Name)
		if err != nil {
			return nil, "", fmt.Errorf("load program: %w", err)
		}
		return coll, fn, nil
	case spec.Path != "":
		coll, err := loadObject(spec.Path)
		if err != nil {
			return nil, "", err
		}
		fn, err := selectProgram(coll, spec.Section)
		if err != nil {
			return nil, "", fmt.Errorf("load program %s: %w", spec.Path, err)
		}
		return coll, fn, nil
	default:
		return nil, "", errors.New("load program: neither a bundled name nor a path given")
	}
}

// loadObject parses the ELF object at path, with errors that tell a
// missing file from one that is not a BPF object.
func loadObject(path string) (*ebpf.CollectionSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load program %s: no such file: %w", path, ErrNotFound)
		}
		return nil, fmt.Errorf("load program: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
			return nil, fmt.Errorf("load program %s: not an ELF object file", path)
		}
		return nil, fmt.Errorf("load program %s: ELF object is truncated or corrupt: %w", path, err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_BPF {
		return nil, fmt.Errorf("load program %s: ELF object is for %s, not BPF (compile with clang -target bpf)", path, machine)
	}
	coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("load program %s: ELF object is truncated or corrupt: %w", path, err)
		}
		return nil, fmt.Errorf("load program %s: invalid BPF object: %w", path, err)
	}
	return coll, nil
}

// selectProgram returns the name of the program in coll that section
// selects, by function name first, then by ELF section name.
func selectProgram(coll *ebpf.CollectionSpec, section string) (string, error) {
	var names []string
	for name, p := range coll.Programs {
		if p.Type != ebpf.UnspecifiedProgram {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", errors.New("object has no programs")
	}
	if section == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		return "", fmt.Errorf("object has %d programs; choose one by section or function name: %s", len(names), describePrograms(coll, names))
	}
	if p, ok := coll.Programs[section]; ok && p.Type != ebpf.UnspecifiedProgram {
		return section, nil
	}
	var match []string
	for _, name := range names {
		if coll.Programs[name].SectionName == section {
			match = append(match, name)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return "", fmt.Errorf("no program in section or function %q: %w; available: %s", section, ErrNotFound, describePrograms(coll, names))
	default:
		return "", fmt.Errorf("section %q holds %d programs; choose one by function name: %s", section, len(match), describePrograms(coll, match))
	}
}

func describePrograms(coll *ebpf.CollectionSpec, names []string) string {
	d := make([]string, len(names))
	for i, name := range names {
		d[i] = fmt.Sprintf("%s (section %q)", name, coll.Programs[name].SectionName)
	}
	return strings.Join(d, ", ")
}

// setConsts writes consts into coll's constant globals, encoded according
// to each variable's BTF type.
func setConsts(coll *ebpf.CollectionSpec, consts map[string]int64) error {
	return btfcodec.SetConsts(coll, consts)
}

// setAddrConsts writes IP addresses into constant globals typed as a
// 4- or 16-byte array (or a 4-byte integer for IPv4), in network order.
func setAddrConsts(coll *ebpf.CollectionSpec, consts map[string]netip.Addr) error {
	return btfcodec.SetAddrConsts(coll, consts)
}

func statsCompatible(m *ebpf.Map) bool {
	return (m.Type() == ebpf.PerCPUArray || m.Type() == ebpf.Array) &&
		m.KeySize() == 4 && m.ValueSize() == 8 && m.MaxEntries() >= bpf.NumStats
}

// verifierError reports a program the verifier rejected, with the last
// lines of its log.
type verifierError struct {
	prog string
	err  *ebpf.VerifierError
}

func (e *verifierError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "load program %s: the verifier rejected it (%v)", e.prog, e.err.Cause)
	log := e.err.Log
	for len(log) > 0 && strings.TrimSpace(log[len(log)-1]) == "" {
		log = log[:len(log)-1]
	}
	tail := log[max(0, len(log)-verifierLogLines):]
	if len(tail) > 0 {
		fmt.Fprintf(&b, "\nverifier log (last %d of %d lines):", len(tail), len(log))
		for _, line := range tail {
			b.WriteString("\n  ")
			b.WriteString(line)
		}
	}
	return b.String()
}

func (e *verifierError) Unwrap() error { return e.err }

// Name is the bundled program's name or, for an object file, the selected
// program's function name.
func (p *Program) Name() string { return p.name }

// ID is the program's ID in the kernel.
func (p *Program) ID() uint32 { return p.id }

// Type is the program's type, e.g. "SchedCLS".
func (p *Program) Type() string { return p.typ.String() }

// Stats returns the program's counters summed over all CPUs. It returns
// ErrNoStats if the object has no compatible stats map.
func (p *Program) Stats() (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dry {
		return Stats{}, nil
	}
	if p.coll == nil {
		return Stats{}, fmt.Errorf("stats of program %s: program is closed", p.name)
	}
	if p.stats == nil {
		return Stats{}, fmt.Errorf("stats of program %s: %w", p.name, ErrNoStats)
	}
	var vals [bpf.NumStats]uint64
	for i := range vals {
		key := uint32(i)
		if p.stats.Type() == ebpf.PerCPUArray {
			var percpu []uint64
			if err := p.stats.Lookup(key, &percpu); err != nil {
				return Stats{}, fmt.Errorf("stats of program %s: read counter %d: %w", p.name, i, err)
			}
			for _, v := range percpu {
				vals[i] += v
			}
		} else if err := p.stats.Lookup(key, &vals[i]); err != nil {
			return Stats{}, fmt.Errorf("stats of program %s: read counter %d: %w", p.name, i, err)
		}
	}
	return Stats{
		Passed:     vals[bpf.StatPassed],
		Dropped:    vals[bpf.StatDropped],
		Redirected: vals[bpf.StatRedirected],
	}, nil
}

// Close releases the program and its maps. Attachments keep the program
// in the kernel until they are detached. Close is idempotent.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil
	}
	p.coll.Close()
	p.coll, p.prog, p.stats = nil, nil, nil
	return nil
}

// Hook is a place in the datapath a program can be attached to.
type Hook int

// Hooks. The zero Hook is invalid.
const (
	// HookIngress is tcx ingress: packets a device receives.
	HookIngress Hook = iota + 1
	// HookEgress is tcx egress: packets a device transmits.
	HookEgress
	// HookPrimary is a netkit pair's primary device: packets the primary
	// transmits, before they reach the peer.
	HookPrimary
	// HookPeer is a netkit pair's peer device: packets the peer transmits,
	// before they reach the primary.
	HookPeer
	// HookXDP is XDP: packets a device receives, before the kernel
	// allocates an skb. One program per device.
	HookXDP
)

var hookNames = map[Hook]string{
	HookIngress: "ingress",
	HookEgress:  "egress",
	HookPrimary: "primary",
	HookPeer:    "peer",
	HookXDP:     "xdp",
}

// String returns the hook's name as ParseHook accepts it.
func (h Hook) String() string {
	if s, ok := hookNames[h]; ok {
		return s
	}
	return fmt.Sprintf("Hook(%d)", int(h))
}

// ParseHook parses "ingress", "egress" (tcx), "primary" or "peer" (netkit).
func ParseHook(s string) (Hook, error) {
	for h := HookIngress; h <= HookXDP; h++ {
		if hookNames[h] == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown hook %q: valid hooks are \"ingress\", \"egress\" (tcx), \"primary\", \"peer\" (netkit) and \"xdp\"", s)
}

func (h Hook) attachType() (ebpf.AttachType, bool) {
	switch h {
	case HookIngress:
		return ebpf.AttachTCXIngress, true
	case HookEgress:
		return ebpf.AttachTCXEgress, true
	case HookPrimary:
		return ebpf.AttachNetkitPrimary, true
	case HookPeer:
		return ebpf.AttachNetkitPeer, true
	case HookXDP:
		return ebpf.AttachXDP, true
	}
	return 0, false
}

// Attachment is a program attached to a hook through a BPF link. Nothing
// is pinned: detaching, or the process exiting, removes it.
type Attachment struct {
	id      uint32
	hook    Hook
	prog    string
	ifindex int

	mu   sync.Mutex
	link link.Link
	dev  *Link // set in dry runs, for Detach
	dry  *Lab
	// progID is the attached program's ID; legacy, for a legacy tc
	// filter, deletes it.
	progID uint32
	legacy func() error
	on     *Link // the device it was attached to
	gone   bool  // detached
}

// Device is the link the program was attached to; nil if unknown.
func (a *Attachment) Device() *Link { return a.on }

// Program is the attached program's name.
func (a *Attachment) Program() string { return a.prog }

// Detached reports whether Detach was called.
func (a *Attachment) Detached() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gone
}

// AttachProgram attaches p to hook on the device with ifindex in ns. The
// tcx hooks take any device; the netkit hooks need the ifindex of a netkit
// pair's primary device. Errors for a kernel without tcx or netkit wrap
// ErrNotSupported.
func AttachProgram(p *Program, ns *Netns, ifindex int, hook Hook, opts AttachOptions) (*Attachment, error) {
	at, ok := hook.attachType()
	if !ok {
		return nil, fmt.Errorf("attach program: invalid hook %s", hook)
	}
	p.mu.Lock()
	prog := p.prog
	if prog == nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("attach program %s: program is closed", p.name)
	}
	// Hold a reference of our own: p may be closed while we attach.
	prog, err := prog.Clone()
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("attach program %s: %w", p.name, err)
	}
	defer prog.Close()

	what := fmt.Sprintf("attach %s to %s ifindex %d in netns %s", p.name, hook, ifindex, ns.Name())
	if err := checkHookType(p, hook); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if ifindex <= 0 {
		return nil, fmt.Errorf("%s: invalid ifindex", what)
	}
	anchor, err := opts.anchor()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if hook == HookXDP && anchor != nil {
		return nil, fmt.Errorf("%s: XDP takes one program per device: there is no order to choose", what)
	}

	var l link.Link
	err = ns.Do(func() error {
		var err error
		switch hook {
		case HookIngress, HookEgress:
			l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor})
		case HookXDP:
			l, err = link.AttachXDP(link.XDPOptions{Interface: ifindex, Program: prog})
		default:
			l, err = link.AttachNetkit(link.NetkitOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor})
		}
		return err
	})
	if (hook == HookIngress || hook == HookEgress) && errors.Is(err, ebpf.ErrNotSupported) {
		// link.AttachTCX probes the kernel for tcx links when it fails.
		return attachLegacyTC(p, prog, ns, ifindex, hook, opts, what)
	}
	if err != nil && anchor != nil && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ERANGE)) {
		return nil, fmt.Errorf("%s: %s is not attached to that hook; see chain() for what is: %w", what, opts.describe(), err)
	}
	if err != nil {
		return nil, attachError(what, hook, err)
	}
	info, err := l.Info()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: link info: %w", what, err)
	}
	return &Attachment{progID: p.id, id: uint32(info.ID), hook: hook, prog: p.name, ifindex: ifindex, link: l}, nil
}

// checkHookType says which program types a hook takes.
func checkHookType(p *Program, hook Hook) error {
	switch {
	case hook == HookXDP && p.typ != ebpf.XDP:
		return fmt.Errorf("program %s has type %s; the xdp hook takes XDP programs (SEC(\"xdp\"), e.g. the bundled xdp_pass, xdp_drop_port)", p.name, p.typ)
	case hook != HookXDP && p.typ != ebpf.SchedCLS:
		return fmt.Errorf("program %s has type %s; %s hooks take SchedCLS programs (SEC(\"tc\")); attach XDP programs to \"xdp\"", p.name, p.typ, hookFamily(hook))
	}
	return nil
}

// AttachOptions place a program among the others on a tcx or netkit
// hook. At most one field may be set; none appends, as Last does.
type AttachOptions struct {
	// First puts the program before every other.
	First bool
	// Last puts it after every other.
	Last bool
	// Before and After put it right before or after an attached
	// program (any attachment of it) or attachment.
	BeforeProgram, AfterProgram       *Program
	BeforeAttachment, AfterAttachment *Attachment
}

func (o AttachOptions) count() int {
	n := 0
	for _, set := range []bool{o.First, o.Last, o.BeforeProgram != nil, o.AfterProgram != nil, o.BeforeAttachment != nil, o.AfterAttachment != nil} {
		if set {
			n++
		}
	}
	return n
}

func (o AttachOptions) describe() string {
	switch {
	case o.BeforeProgram != nil:
		return "program " + o.BeforeProgram.name
	case o.AfterProgram != nil:
		return "program " + o.AfterProgram.name
	case o.BeforeAttachment != nil:
		return "the attachment of " + o.BeforeAttachment.prog
	case o.AfterAttachment != nil:
		return "the attachment of " + o.AfterAttachment.prog
	}
	return "the anchor"
}

func (o AttachOptions) anchor() (link.Anchor, error) {
	if o.count() > 1 {
		return nil, errors.New("give at most one of first, last, before and after")
	}
	progID := func(p *Program) (ebpf.ProgramID, error) {
		if p.dry {
			return 0, nil
		}
		return ebpf.ProgramID(p.id), nil
	}
	switch {
	case o.First:
		return link.Head(), nil
	case o.Last:
		return link.Tail(), nil
	case o.BeforeProgram != nil:
		id, err := progID(o.BeforeProgram)
		return link.BeforeProgramByID(id), err
	case o.AfterProgram != nil:
		id, err := progID(o.AfterProgram)
		return link.AfterProgramByID(id), err
	case o.BeforeAttachment != nil:
		return link.BeforeLinkByID(link.ID(o.BeforeAttachment.id)), nil
	case o.AfterAttachment != nil:
		return link.AfterLinkByID(link.ID(o.AfterAttachment.id)), nil
	}
	return nil, nil
}

// Chain lists the names of the programs on a tcx or netkit hook of a
// device, in the order they run, whoever attached them.
func Chain(ns *Netns, ifindex int, hook Hook) ([]string, error) {
	at, ok := hook.attachType()
	if !ok || hook == HookXDP {
		return nil, fmt.Errorf("chain: hook %s has no chain; use a tcx or netkit hook", hook)
	}
	var names []string
	err := ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			return err
		}
		for _, ap := range res.Programs {
			name := fmt.Sprintf("id %d", ap.ID)
			if prog, err := ebpf.NewProgramFromID(ap.ID); err == nil {
				if info, err := prog.Info(); err == nil && info.Name != "" {
					name = info.Name
				}
				prog.Close()
			}
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, attachError(fmt.Sprintf("chain of %s ifindex %d in netns %s", hook, ifindex, ns.Name()), hook, err)
	}
	return names, nil
}

func hookFamily(h Hook) string {
	switch h {
	case HookPrimary, HookPeer:
		return "netkit"
	case HookXDP:
		return "xdp"
	}
	return "tcx"
}

func attachError(what string, hook Hook, err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		if hookFamily(hook) == "netkit" {
			return fmt.Errorf("%s: the running kernel %s cannot attach to netkit devices (needs CONFIG_NETKIT, Linux 6.7 or later): %w: %w", what, KernelRelease(), ErrNotSupported, err)
		}
		return fmt.Errorf("%s: the running kernel %s has no tcx (needs Linux 6.6 or later): %w: %w", what, KernelRelease(), ErrNotSupported, err)
	case hookFamily(hook) == "netkit" && errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%s: the device is not a netkit device; use \"ingress\" or \"egress\" (tcx) on other devices: %w", what, err)
	case hookFamily(hook) == "netkit" && errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: the device is a netkit peer; attach through the pair's primary device: %w", what, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s: no such device in the namespace: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ID is the BPF link's ID in the kernel.
func (a *Attachment) ID() uint32 { return a.id }

// Hook is the hook the program is attached to.
func (a *Attachment) Hook() Hook { return a.hook }

// Detach removes the program from its hook. It is idempotent.
func (a *Attachment) Detach() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gone = true
	if a.legacy != nil {
		err := a.legacy()
		a.legacy = nil
		if err != nil {
			return fmt.Errorf("detach %s from %s ifindex %d: %w", a.prog, a.hook, a.ifindex, err)
		}
		return nil
	}
	if a.dev != nil {
		switch a.hook {
		case HookIngress, HookEgress:
			a.dry.Shell("%sbpftool net detach tcx_%s dev %s", inNs(a.dev.ns), a.hook, shq(a.dev.name))
		case HookXDP:
			a.dry.Shell("%sbpftool net detach xdp dev %s", inNs(a.dev.ns), shq(a.dev.name))
		}
		a.dev = nil
		return nil
	}
	if a.link == nil {
		return nil
	}
	err := a.link.Close()
	a.link = nil
	if err != nil {
		return fmt.Errorf("detach %s from %s ifindex %d: %w", a.prog, a.hook, a.ifindex, err)
	}
	return nil
}
