package machine

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// bpfObjects lists every BPF program, map and link by the kernel's ID
// iteration, unless the snapshot is local.
func (c *collector) bpfObjects() error {
	if c.opts.Local {
		return nil
	}
	if err := c.bpfPrograms(); err != nil {
		return err
	}
	if err := c.bpfMaps(); err != nil {
		return err
	}
	return c.bpfLinks()
}

func (c *collector) bpfPrograms() error {
	return eachID("program", ebpf.ProgramGetNextID, ebpf.NewProgramFromID, func(id ebpf.ProgramID, p *ebpf.Program) error {
		info, err := p.Info()
		if err != nil {
			return err
		}
		c.add("bpf-prog %d %s %s tag %s", id, info.Type, info.Name, info.Tag)
		return nil
	})
}

func (c *collector) bpfMaps() error {
	return eachID("map", ebpf.MapGetNextID, ebpf.NewMapFromID, func(id ebpf.MapID, m *ebpf.Map) error {
		info, err := m.Info()
		if err != nil {
			return err
		}
		c.add("bpf-map %d %s %s", id, info.Type, info.Name)
		return nil
	})
}

// eachID calls fn with every BPF object of a kind, found by the kernel's
// ID iteration (next) and opened by ID; objects that go meanwhile are
// skipped.
func eachID[ID ~uint32, O interface{ Close() error }](what string, next func(ID) (ID, error), open func(ID) (O, error), fn func(ID, O) error) error {
	var id ID
	for {
		n, err := next(id)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("next BPF %s after %d: %w", what, id, err)
		}
		id = n
		o, err := open(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = fn(id, o)
			o.Close()
		}
		if err != nil {
			return fmt.Errorf("BPF %s %d: %w", what, id, err)
		}
	}
}

func (c *collector) bpfLinks() error {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if errors.Is(err, ebpf.ErrNotSupported) {
			c.add("bpf-link %d (no info)", it.ID)
			continue
		}
		if err != nil {
			return fmt.Errorf("BPF link %d: %w", it.ID, err)
		}
		detail := ""
		switch {
		case info.TCX() != nil:
			detail = " " + info.TCX().AttachType.String()
		case info.Netkit() != nil:
			detail = " " + info.Netkit().AttachType.String()
		case info.NetNs() != nil:
			detail = fmt.Sprintf(" %s netns %d", info.NetNs().AttachType, info.NetNs().NetnsInode)
		}
		c.add("bpf-link %d %s prog %d%s", it.ID, linkType(info.Type), info.Program, detail)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("BPF links: %w", err)
	}
	return nil
}

// linkTypes names the kinds of BPF link.
var linkTypes = map[link.Type]string{
	link.RawTracepointType: "raw_tracepoint",
	link.TracingType:       "tracing",
	link.CgroupType:        "cgroup",
	link.IterType:          "iter",
	link.NetNsType:         "netns",
	link.XDPType:           "xdp",
	link.PerfEventType:     "perf_event",
	link.KprobeMultiType:   "kprobe_multi",
	link.TCXType:           "tcx",
	link.UprobeMultiType:   "uprobe_multi",
	link.NetfilterType:     "netfilter",
	link.NetkitType:        "netkit",
	link.StructOpsType:     "struct_ops",
}

func linkType(t link.Type) string {
	if s, ok := linkTypes[t]; ok {
		return s
	}
	return fmt.Sprintf("type%d", t)
}
