package datapath

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/nkscript/nkscript/bpf"
	"golang.org/x/sys/unix"
)

// dropKernel is the kernel part of a DropMonitor: the program on the
// skb:kfree_skb raw tracepoint, its link, the map of watched namespaces
// and the reader of its ring buffer. All are file descriptors of the
// process: closing them, or the process ending, removes them from the
// kernel, so nothing of it is journaled.
type dropKernel struct {
	coll  *ebpf.Collection
	tp    link.Link
	rd    *ringbuf.Reader
	netns *ebpf.Map
	// verdicts is shared with the fexit programs (dropmon_fexit.go).
	verdicts *ebpf.Map
	flushed  chan struct{}
}

var prepareDrops sync.Once

// PrepareDropMonitor loads the drop monitor's program and maps, in the
// background and once per process, without attaching anything. A run
// that will check traffic calls it as it starts, so that its first check
// does not wait for the kernel's BTF and the verifier; the first monitor
// to start takes what it loaded. Loaded but not attached, the program
// runs nowhere, and it goes with the process.
func PrepareDropMonitor() {
	prepareDrops.Do(func() {
		done := make(chan struct{})
		prepared.Lock()
		prepared.done = done
		prepared.Unlock()
		go func() {
			coll, err := loadDropMonitor()
			prepared.Lock()
			prepared.coll, prepared.err = coll, err
			prepared.Unlock()
			close(done)
		}()
	})
}

// prepared is what PrepareDropMonitor loaded, until a monitor takes it.
var prepared struct {
	sync.Mutex
	done chan struct{} // closed when the load has ended
	coll *ebpf.Collection
	err  error
}

// takePrepared waits for PrepareDropMonitor's load and hands its
// collection to the first caller; later ones load their own.
func takePrepared() (*ebpf.Collection, error) {
	prepared.Lock()
	done := prepared.done
	prepared.Unlock()
	if done != nil {
		<-done
	}
	prepared.Lock()
	defer prepared.Unlock()
	coll, err := prepared.coll, prepared.err
	prepared.coll, prepared.err = nil, nil
	if coll == nil && err == nil {
		return loadDropMonitor()
	}
	return coll, err
}

// loadDropMonitor loads the drop monitor's program and maps. A kernel
// without BTF, which CO-RE and the reason names need, is ErrNotSupported.
func loadDropMonitor() (*ebpf.Collection, error) {
	spec, err := bpf.LoadDropMonitor()
	if err != nil {
		return nil, fmt.Errorf("drop monitor: %w", err)
	}
	// CO-RE needs the kernel's types.
	types, err := monitorTypes(spec.Types)
	if err != nil {
		return nil, fmt.Errorf("drop monitor: the kernel's BTF: %w (%w)", err, ErrNotSupported)
	}
	if err := removeMemlock(); err != nil {
		return nil, fmt.Errorf("drop monitor: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: types}})
	if err != nil {
		return nil, fmt.Errorf("drop monitor: load: %w", err)
	}
	return coll, nil
}

// startDropKernel attaches the drop monitor PrepareDropMonitor loaded.
func startDropKernel() (_ *dropKernel, err error) {
	PrepareDropMonitor()
	k := &dropKernel{flushed: make(chan struct{}, 1)}
	if k.coll, err = takePrepared(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			k.close()
		}
	}()
	k.netns = k.coll.Maps[bpf.DropMonNetns]
	k.verdicts = k.coll.Maps[bpf.DropVerdicts]
	if k.tp, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: "kfree_skb", Program: k.coll.Programs[bpf.DropMonProgram]}); err != nil {
		return nil, fmt.Errorf("drop monitor: attach to the kfree_skb tracepoint: %w", err)
	}
	if k.rd, err = ringbuf.NewReader(k.coll.Maps[bpf.DropMonRing]); err != nil {
		return nil, fmt.Errorf("drop monitor: %w", err)
	}
	return k, nil
}

// watch adds the namespace with inode ino to those whose drops are
// reported.
func (k *dropKernel) watch(ino uint64) error {
	if err := k.netns.Put(uint32(ino), uint8(1)); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("drop monitor: it watches %d namespaces at most: drops in the lab's other namespaces are not explained", k.netns.MaxEntries())
		}
		return fmt.Errorf("drop monitor: watch namespace %d: %w", ino, err)
	}
	return nil
}

// dropReadEvery is how often the reader looks at the ring buffer: the
// program wakes it only when the ring fills up (see bpf/dropmon.c), and
// Sync wakes it when a check wants its drops.
const dropReadEvery = 10 * time.Millisecond

// read passes every record of the ring buffer to got until the reader is
// closed; it signals flushed whenever it has read what was there when
// flush was called.
func (k *dropKernel) read(got func(Drop)) {
	var rec ringbuf.Record
	// The program names a location's function in its first record only.
	names := map[uint64]string{}
	k.rd.SetDeadline(time.Now().Add(dropReadEvery))
	for {
		err := k.rd.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			k.rd.SetDeadline(time.Now().Add(dropReadEvery))
			continue
		case errors.Is(err, ringbuf.ErrFlushed):
			select {
			case k.flushed <- struct{}{}:
			default:
			}
			continue
		case err != nil:
			return
		}
		d, err := decodeDrop(rec.RawSample)
		if err != nil {
			continue
		}
		if d.Func != "" {
			names[d.Location] = d.Func
		} else {
			d.Func = names[d.Location]
		}
		got(d)
	}
}

// reasonName names the kernel's drop reason n, from its BTF the first
// time a drop is looked at (reading the enum costs as much as loading the
// monitor); its number if the kernel does not name it.
func reasonName(n uint32) string {
	names, _ := kernelDropReasons()
	if s, ok := names[n]; ok {
		return s
	}
	return strconv.FormatUint(uint64(n), 10)
}

// kernelTypes returns the kernel types the drop monitor needs, its
// reason names among them (see monitorTypes).
func kernelTypes() (*btf.Spec, error) {
	monitorKernel.Lock()
	spec := monitorKernel.spec
	monitorKernel.Unlock()
	if spec != nil {
		return spec, nil
	}
	local, err := bpf.LoadDropMonitor()
	if err != nil {
		return nil, err
	}
	return monitorTypes(local.Types)
}

// kernelDropReasons reads the kernel's drop reasons once.
var kernelDropReasons = sync.OnceValues(dropReasonNames)

func (k *dropKernel) close() {
	if k.rd != nil {
		k.rd.Close()
	}
	if k.tp != nil {
		k.tp.Close()
	}
	if k.coll != nil {
		k.coll.Close()
	}
}

// dropReasonNames reads enum skb_drop_reason from the running kernel's
// BTF: its numbers differ between kernel versions.
func dropReasonNames() (map[uint32]string, error) {
	spec, err := kernelTypes()
	if err != nil {
		return nil, fmt.Errorf("drop monitor: the kernel's BTF: %w (%w)", err, ErrNotSupported)
	}
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		return nil, fmt.Errorf("drop monitor: enum skb_drop_reason: %w (%w)", err, ErrNotSupported)
	}
	names := make(map[uint32]string, len(e.Values))
	for _, v := range e.Values {
		names[uint32(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
	}
	return names, nil
}

// symbols are the kernel's text symbols, sorted by address; the names
// are kept in one block (a run reads some 100,000 of them to name a few
// drop locations: one string each would cost more than reading the file).
type symbols struct {
	addrs []uint64
	ends  []uint32 // the end of each name in names
	names []byte
}

// kernelSymbols reads /proc/kallsyms once, for a drop whose record does
// not name its function (see recordFunc).
var kernelSymbols = sync.OnceValue(func() *symbols {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return &symbols{}
	}
	defer f.Close()
	return parseKallsyms(f)
})

// parseKallsyms reads "ADDRESS TYPE NAME [MODULE]" lines, keeping the
// text symbols.
func parseKallsyms(r io.Reader) *symbols {
	br := bufio.NewReaderSize(r, 1<<16)
	// Room for a typical kernel's text symbols, so that the slices do
	// not grow while the file is read.
	s := &symbols{addrs: make([]uint64, 0, 1<<17), ends: make([]uint32, 0, 1<<17), names: make([]byte, 0, 4<<20)}
	sorted := true
	for {
		line, err := br.ReadSlice('\n')
		if addr, name, ok := kallsymsText(line); ok {
			if n := len(s.addrs); n > 0 {
				sorted = sorted && s.compare(n-1, addr, name) <= 0
			}
			s.addrs = append(s.addrs, addr)
			s.names = append(s.names, name...)
			s.ends = append(s.ends, uint32(len(s.names)))
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	if !sorted {
		s.sort()
	}
	return s
}

// kallsymsText parses one line of /proc/kallsyms: the address and name of
// a text symbol (type t or T) at a non-zero address.
func kallsymsText(line []byte) (uint64, []byte, bool) {
	var addr uint64
	i := 0
	for ; i < len(line) && line[i] != ' '; i++ {
		c := line[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, nil, false
		}
		addr = addr<<4 | uint64(c)
	}
	if i == 0 || i > 16 || addr == 0 || i+3 >= len(line) || (line[i+1] != 't' && line[i+1] != 'T') || line[i+2] != ' ' {
		return 0, nil, false
	}
	name := line[i+3:]
	for e, c := range name {
		if c == ' ' || c == '\t' || c == '\n' {
			name = name[:e]
			break
		}
	}
	return addr, name, len(name) > 0
}

// compare orders the i-th symbol and one at addr named name: by address,
// then name.
func (s *symbols) compare(i int, addr uint64, name []byte) int {
	if c := cmp.Compare(s.addrs[i], addr); c != 0 {
		return c
	}
	return bytes.Compare(s.nameBytes(i), name)
}

// sort orders the symbols by address, then name.
func (s *symbols) sort() {
	idx := make([]int, len(s.addrs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int { return s.compare(x, s.addrs[y], s.nameBytes(y)) })
	out := &symbols{addrs: make([]uint64, 0, len(idx)), ends: make([]uint32, 0, len(idx)), names: make([]byte, 0, len(s.names))}
	for _, i := range idx {
		out.addrs = append(out.addrs, s.addrs[i])
		out.names = append(out.names, s.nameBytes(i)...)
		out.ends = append(out.ends, uint32(len(out.names)))
	}
	*s = *out
}

// nameBytes is the name of the i-th symbol.
func (s *symbols) nameBytes(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.names[start:s.ends[i]]
}

// name returns the symbol that contains addr: the last one at or below
// it; "" if there is none.
func (s *symbols) name(addr uint64) string {
	i, found := slices.BinarySearch(s.addrs, addr)
	if !found {
		i--
	}
	if i < 0 || addr == 0 {
		return ""
	}
	return string(s.nameBytes(i))
}
