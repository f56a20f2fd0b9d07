package datapath

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/nkscript/nkscript/bpf"
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

// PrepareDropMonitor reads, in the background and once per process, what
// starting the drop monitor spends most of its time on: the running
// kernel's BTF, which CO-RE and the reason names need (cilium/ebpf keeps
// it once read). It loads nothing into the kernel. A run that will check
// traffic calls it early, so that its first check does not wait for it.
func PrepareDropMonitor() {
	prepareDrops.Do(func() { go btf.LoadKernelSpec() })
}

// startDropKernel loads the drop monitor and attaches it. A kernel
// without BTF, which CO-RE and the reason names need, is ErrNotSupported.
func startDropKernel() (_ *dropKernel, err error) {
	// CO-RE needs the kernel's BTF (cilium/ebpf keeps it once read).
	if _, err := btf.LoadKernelSpec(); err != nil {
		return nil, fmt.Errorf("drop monitor: the kernel's BTF: %w (%w)", err, ErrNotSupported)
	}
	spec, err := bpf.LoadDropMonitor()
	if err != nil {
		return nil, fmt.Errorf("drop monitor: %w", err)
	}
	k := &dropKernel{flushed: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			k.close()
		}
	}()
	if k.coll, err = ebpf.NewCollection(spec); err != nil {
		return nil, fmt.Errorf("drop monitor: load: %w", err)
	}
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
		return fmt.Errorf("drop monitor: watch namespace %d: %w", ino, err)
	}
	return nil
}

// read passes every record of the ring buffer to got until the reader is
// closed; it signals flushed whenever it has read what was there when
// flush was called.
func (k *dropKernel) read(got func(Drop)) {
	var rec ringbuf.Record
	for {
		err := k.rd.ReadInto(&rec)
		switch {
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
	spec, err := btf.LoadKernelSpec()
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

// symbols are the kernel's text symbols, sorted by address.
type symbols struct {
	addrs []uint64
	names []string
}

// kernelSymbols reads /proc/kallsyms once.
var kernelSymbols = sync.OnceValue(func() *symbols {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return &symbols{}
	}
	defer f.Close()
	return parseKallsyms(bufio.NewScanner(f))
})

// parseKallsyms reads "ADDRESS TYPE NAME [MODULE]" lines, keeping the
// text symbols.
func parseKallsyms(sc *bufio.Scanner) *symbols {
	type sym struct {
		addr uint64
		name string
	}
	var all []sym
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || (f[1] != "t" && f[1] != "T") {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		all = append(all, sym{a, f[2]})
	}
	slices.SortFunc(all, func(x, y sym) int {
		if x.addr < y.addr {
			return -1
		}
		if x.addr > y.addr {
			return 1
		}
		return strings.Compare(x.name, y.name)
	})
	s := &symbols{addrs: make([]uint64, len(all)), names: make([]string, len(all))}
	for i, x := range all {
		s.addrs[i], s.names[i] = x.addr, x.name
	}
	return s
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
	return s.names[i]
}
