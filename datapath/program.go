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
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

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
	// Source, if set, is the C source Path was compiled from, as the
	// user named it; messages name it rather than Path.
	Source string
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

// origin names the file a program comes from: its C source, else its
// object.
func (s ProgramSpec) origin() string {
	if s.Source != "" {
		return s.Source
	}
	return s.Path
}

// Stats are a program's packet counters, summed over all CPUs.
type Stats struct {
	Passed     uint64
	Dropped    uint64
	Redirected uint64
}

// Program is a BPF program loaded by a Lab's backend: into the kernel,
// or as a dry run's stand-in. Nothing is pinned: closing it, or the
// process exiting, unloads it once no attachment holds it.
type Program struct {
	name  string
	id    uint32
	typ   ebpf.ProgramType
	specs map[string]*ebpf.MapSpec

	mu   sync.Mutex
	impl programImpl
}

// programImpl is what a Program is in its backend.
type programImpl interface {
	// stats reads the program's counters.
	stats() (Stats, error)
	// mapStore returns where the entries of the map called name live.
	mapStore(name string) (mapStore, error)
	// kernel returns a reference of the caller's own to the loaded
	// program.
	kernel() (*ebpf.Program, error)
	// run runs the program on a packet with BPF_PROG_TEST_RUN; the
	// verdict is left to the caller.
	run(data []byte, repeat uint32) (RunResult, error)
	close() error
}

// kernelProg is a program loaded into the kernel.
type kernelProg struct {
	coll     *ebpf.Collection
	prog     *ebpf.Program
	statsMap *ebpf.Map // nil if the object has no compatible stats map
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
	name, label := fn, programLabel(spec, fn)
	if spec.Name != "" {
		name = spec.Name
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
	kp := &kernelProg{coll: c, prog: c.Programs[fn]}
	p := &Program{name: name, typ: ps.Type, specs: coll.Maps, impl: kp}
	info, err := kp.prog.Info()
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
		kp.statsMap = m
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
			return nil, "", fmt.Errorf("load program %s: %w", spec.origin(), err)
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
	start := max(0, len(log)-verifierLogLines)
	tail := log[start:]
	if len(tail) > 0 {
		fmt.Fprintf(&b, "\nverifier log (last %d of %d lines):", len(tail), len(log))
		if src := sourceLineBefore(log, start); src != "" {
			b.WriteString("\n  " + src + "\n  ...")
		}
		for _, line := range tail {
			b.WriteString("\n  ")
			b.WriteString(line)
		}
	}
	return b.String()
}

func (e *verifierError) Unwrap() error { return e.err }

// verifierInsn matches a verifier log line that shows an instruction,
// "14: (71) r1 = *(u8 *)(r1 +0)".
var verifierInsn = regexp.MustCompile(`^\d+: \(`)

// sourceLineBefore returns the source annotation ("; return x; @
// file.bpf.c:17", present when the object has BTF line info) of the last
// instruction in log, when it comes before the line at index start and so
// out of the shown tail; else "".
func sourceLineBefore(log []string, start int) string {
	i := len(log) - 1
	for i >= 0 && !verifierInsn.MatchString(log[i]) {
		i--
	}
	for ; i >= 0; i-- {
		if strings.HasPrefix(log[i], "; ") {
			if i < start {
				return log[i]
			}
			return ""
		}
	}
	return ""
}

// Name is the bundled program's name or, for an object file, the selected
// program's function name.
func (p *Program) Name() string { return p.name }

// ID is the program's ID in the kernel.
func (p *Program) ID() uint32 { return p.id }

// Type is the program's type, e.g. "SchedCLS".
func (p *Program) Type() string { return p.typ.String() }

// Stats returns the program's counters summed over all CPUs. It returns
// ErrNoStats if the object has no compatible stats map; a dry run's
// counters are zero.
func (p *Program) Stats() (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.impl.stats()
	if err != nil {
		return Stats{}, fmt.Errorf("stats of program %s: %w", p.name, err)
	}
	return s, nil
}

// Close releases the program and its maps. Attachments keep the program
// in the kernel until they are detached. Close is idempotent.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.impl.close()
}

// kernelProgram returns a reference of the caller's own to the loaded
// program: p may be closed while the caller attaches it.
func (p *Program) kernelProgram() (*ebpf.Program, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.impl.kernel()
}

var errClosed = errors.New("program is closed")

func (kp *kernelProg) stats() (Stats, error) {
	if kp.coll == nil {
		return Stats{}, errClosed
	}
	if kp.statsMap == nil {
		return Stats{}, ErrNoStats
	}
	var vals [bpf.NumStats]uint64
	for i := range vals {
		key := uint32(i)
		if kp.statsMap.Type() == ebpf.PerCPUArray {
			var percpu []uint64
			if err := kp.statsMap.Lookup(key, &percpu); err != nil {
				return Stats{}, fmt.Errorf("read counter %d: %w", i, err)
			}
			for _, v := range percpu {
				vals[i] += v
			}
		} else if err := kp.statsMap.Lookup(key, &vals[i]); err != nil {
			return Stats{}, fmt.Errorf("read counter %d: %w", i, err)
		}
	}
	return Stats{
		Passed:     vals[bpf.StatPassed],
		Dropped:    vals[bpf.StatDropped],
		Redirected: vals[bpf.StatRedirected],
	}, nil
}

func (kp *kernelProg) mapStore(name string) (mapStore, error) {
	if kp.coll == nil {
		return nil, errClosed
	}
	m := kp.coll.Maps[name]
	if m == nil {
		return nil, fmt.Errorf("not loaded")
	}
	return kernelMap{m}, nil
}

func (kp *kernelProg) kernel() (*ebpf.Program, error) {
	if kp.prog == nil {
		return nil, errClosed
	}
	return kp.prog.Clone()
}

func (kp *kernelProg) close() error {
	if kp.coll == nil {
		return nil
	}
	kp.coll.Close()
	kp.coll, kp.prog, kp.statsMap = nil, nil, nil
	return nil
}
