package datapath

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
)

// RunResult is what a program did with one packet under
// BPF_PROG_TEST_RUN.
type RunResult struct {
	// Code is the program's return value.
	Code int32
	// Verdict names Code as the program's hook does: see VerdictName.
	Verdict string
	// Out is the packet as the program left it.
	Out []byte
	// PerRun is the wall-clock time of the test run divided by the
	// number of runs: the program's cost plus, spread over the runs,
	// the system call's.
	PerRun time.Duration
}

// maxRunGrowth is how many bytes a program may add to a packet in a test
// run (bpf_skb_change_head, bpf_xdp_adjust_head and the like).
const maxRunGrowth = 4096

// minRunData is the shortest packet BPF_PROG_TEST_RUN takes for tc and
// XDP programs: an Ethernet header.
const minRunData = 14

// RunProgram runs p on data, repeat times (at least once), with
// BPF_PROG_TEST_RUN: in the kernel, on the calling thread's network
// namespace, attached to nothing. Map updates stay, as after real
// packets. The verdict is named for the hook p is attached to in the lab
// (legacy tc names if it is attached through legacy tc), else for its
// type. A dry run cannot run programs: its programs are not loaded.
func (l *Lab) RunProgram(p *Program, data []byte, repeat int) (RunResult, error) {
	legacy := false
	for _, a := range l.Attachments() {
		if a.progID == p.id && a.isLegacy() {
			legacy = true
		}
	}
	return p.run(data, repeat, legacy)
}

func (p *Program) run(data []byte, repeat int, legacyTC bool) (RunResult, error) {
	if len(data) < minRunData {
		return RunResult{}, fmt.Errorf("run program %s: a packet of %d bytes is too short: the kernel wants at least an Ethernet header (%d bytes)", p.name, len(data), minRunData)
	}
	if repeat < 1 || repeat > math.MaxUint32 {
		return RunResult{}, fmt.Errorf("run program %s: repeat %d is out of range 1..%d", p.name, repeat, uint32(math.MaxUint32))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	res, err := p.impl.run(data, uint32(repeat))
	if err != nil {
		return RunResult{}, fmt.Errorf("run program %s: %w", p.name, err)
	}
	res.Verdict = VerdictName(p.typ, legacyTC, res.Code)
	return res, nil
}

func (kp *kernelProg) run(data []byte, repeat uint32) (RunResult, error) {
	if kp.prog == nil {
		return RunResult{}, errClosed
	}
	out := make([]byte, len(data)+maxRunGrowth)
	opts := &ebpf.RunOptions{Data: data, DataOut: out, Repeat: repeat}
	start := time.Now()
	code, err := kp.prog.Run(opts)
	took := time.Since(start)
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return RunResult{}, fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return RunResult{}, err
	}
	return RunResult{Code: int32(code), Out: opts.DataOut, PerRun: took / time.Duration(repeat)}, nil
}

// errNotRun says why a program of a dry run or a graph cannot run.
var errNotRun = fmt.Errorf("a dry run or graph does not load programs into the kernel, so it cannot run them: %w", ErrNotSupported)

// Verdicts as the hooks name them, by return code.
var (
	// tcx and netkit (TCX_*, NETKIT_*).
	tcxVerdicts = map[int32]string{-1: "NEXT", 0: "PASS", 2: "DROP", 7: "REDIRECT"}
	// legacy tc, cls_bpf in direct-action mode (TC_ACT_*).
	tcVerdicts = map[int32]string{-1: "UNSPEC", 0: "OK", 1: "RECLASSIFY", 2: "SHOT", 3: "PIPE",
		4: "STOLEN", 5: "QUEUED", 6: "REPEAT", 7: "REDIRECT", 8: "TRAP"}
	// XDP (XDP_*).
	xdpVerdicts = map[int32]string{0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
)

// VerdictName names a program's return code as its hook does: XDP
// programs XDP_PASS, XDP_DROP, ...; SchedCLS programs NEXT, PASS, DROP,
// REDIRECT as tcx and netkit do, or UNSPEC, OK, SHOT, ... as legacy tc
// does (legacyTC). A code the hook does not define is "CODE(n)".
func VerdictName(typ ebpf.ProgramType, legacyTC bool, code int32) string {
	names := tcxVerdicts
	switch {
	case typ == ebpf.XDP:
		names = xdpVerdicts
	case legacyTC:
		names = tcVerdicts
	}
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("CODE(%d)", code)
}
