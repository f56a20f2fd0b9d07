package datapath

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nkscript/nkscript/bpf"
	"github.com/nkscript/nkscript/internal/testenv"
)

// Objects bpf/gen.go builds; the tests use them as user-supplied ELF files.
var (
	dropPortObject = filepath.Join("..", "bpf", "drop_port_bpfel.o")
	multiObject    = filepath.Join("..", "bpf", "testdata", "multi_bpfel.o")
	badObject      = filepath.Join("..", "bpf", "testdata", "bad_bpfel.o")
)

// Verdicts the bundled programs return, as BPF_PROG_TEST_RUN reports them:
// the program's 32-bit return value, unsigned.
const (
	// verdictNext is -1 (TCX_NEXT, NETKIT_NEXT, TC_ACT_UNSPEC): the program
	// does not drop the packet and hands it on to the next program.
	verdictNext uint32 = 0xffffffff
	// verdictDrop is TC_ACT_SHOT (TCX_DROP, NETKIT_DROP).
	verdictDrop uint32 = 2
)

// verdictString names a verdict for messages.
func verdictString(v uint32) string {
	switch v {
	case verdictNext:
		return "next (-1)"
	case verdictDrop:
		return "drop (2)"
	case 0:
		return "pass (0)"
	}
	return fmt.Sprintf("%d", int32(v))
}

// progTestSafety bounds how long a test waits for packets before failing instead
// of hanging. No assertion depends on it.
const progTestSafety = 30 * time.Second

// requireBPF skips tests that load BPF programs when not root.
func requireBPF(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(tb, "needs root: loads BPF programs")
	}
}

func loadProgram(tb testing.TB, spec ProgramSpec) *Program {
	tb.Helper()
	p, err := LoadProgram(spec)
	if err != nil {
		tb.Fatalf("load %+v: %v", spec, err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func mustLoadFail(tb testing.TB, spec ProgramSpec, want ...string) error {
	tb.Helper()
	p, err := LoadProgram(spec)
	if err == nil {
		p.Close()
		tb.Fatalf("load %+v succeeded, want an error containing %q", spec, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			tb.Errorf("load %+v: error %q does not contain %q", spec, err, w)
		}
	}
	return err
}

// runProg runs p once on pkt with BPF_PROG_TEST_RUN and returns its verdict.
func runProg(tb testing.TB, p *Program, pkt []byte) uint32 {
	tb.Helper()
	ret, err := kprog(p).Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		tb.Fatalf("test run %s: %v", p.Name(), err)
	}
	return ret
}

func progStats(tb testing.TB, p *Program) Stats {
	tb.Helper()
	s, err := p.Stats()
	if err != nil {
		tb.Fatalf("stats of %s: %v", p.Name(), err)
	}
	return s
}

// Packet building. Checksums are left zero: the programs do not look at
// them and BPF_PROG_TEST_RUN does not check them.

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoHopByHop = 0
)

func pktEther(etherType uint16, payload []byte) []byte {
	b := []byte{
		0x02, 0, 0, 0, 0, 0x02, // destination
		0x02, 0, 0, 0, 0, 0x01, // source
		byte(etherType >> 8), byte(etherType),
	}
	return append(b, payload...)
}

// ipv4 builds an IPv4 header with the given options (a multiple of four
// bytes) and fragment offset field, followed by payload.
func pktIPv4(proto uint8, options []byte, fragOff uint16, payload []byte) []byte {
	hl := 20 + len(options)
	b := make([]byte, hl, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[8] = 64
	b[9] = proto
	copy(b[12:], []byte{10, 0, 0, 1})
	copy(b[16:], []byte{10, 0, 0, 2})
	copy(b[20:], options)
	binary.BigEndian.PutUint16(b[10:], ipChecksum(b[:hl]))
	return append(b, payload...)
}

func pktIPv6(nextHdr uint8, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = nextHdr
	b[7] = 64
	copy(b[8:], netip.MustParseAddr("fd00::1").AsSlice())
	copy(b[24:], netip.MustParseAddr("fd00::2").AsSlice())
	return append(b, payload...)
}

func pktTCP(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = 0x02 // SYN
	return b
}

func pktUDP(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func ipChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestProgramDropPort(t *testing.T) {
	requireBPF(t)
	const port = 4242 // 0x1092
	p := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": port}})
	if p.Name() != "drop_port" || p.Type() != "SchedCLS" || p.ID() == 0 {
		t.Errorf("name %q type %q id %d; want drop_port, SchedCLS and a non-zero ID", p.Name(), p.Type(), p.ID())
	}
	if s := progStats(t, p); s != (Stats{}) {
		t.Fatalf("fresh program has stats %+v", s)
	}

	// An option of four bytes whose first two spell the port, to catch a
	// program that ignores the IHL.
	portOption := []byte{0x10, 0x92, 0x01, 0x01}
	cases := []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"v4 tcp dst", pktEther(etherTypeIPv4, pktIPv4(protoTCP, nil, 0, pktTCP(40000, port))), verdictDrop},
		{"v4 tcp src", pktEther(etherTypeIPv4, pktIPv4(protoTCP, nil, 0, pktTCP(port, 80))), verdictDrop},
		{"v4 udp dst", pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0, pktUDP(40000, port, []byte("x")))), verdictDrop},
		{"v4 udp src", pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0, pktUDP(port, 53, nil))), verdictDrop},
		{"v4 options udp dst", pktEther(etherTypeIPv4, pktIPv4(protoUDP, []byte{1, 1, 1, 1}, 0, pktUDP(40000, port, nil))), verdictDrop},
		{"v4 first fragment", pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0x2000, pktUDP(40000, port, nil))), verdictDrop},
		{"v6 tcp dst", pktEther(etherTypeIPv6, pktIPv6(protoTCP, pktTCP(40000, port))), verdictDrop},
		{"v6 tcp src", pktEther(etherTypeIPv6, pktIPv6(protoTCP, pktTCP(port, 443))), verdictDrop},
		{"v6 udp dst", pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(40000, port, nil))), verdictDrop},
		{"v6 udp src", pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(port, 40000, []byte("payload")))), verdictDrop},

		{"v4 tcp other", pktEther(etherTypeIPv4, pktIPv4(protoTCP, nil, 0, pktTCP(40000, port+1))), verdictNext},
		{"v4 udp byte-swapped port", pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0, pktUDP(0x9210, 0x9210, nil))), verdictNext},
		{"v4 port only in options", pktEther(etherTypeIPv4, pktIPv4(protoUDP, portOption, 0, pktUDP(53, 53, nil))), verdictNext},
		{"v4 icmp", pktEther(etherTypeIPv4, pktIPv4(protoICMP, nil, 0, pktUDP(port, port, nil))), verdictNext},
		{"v4 later fragment", pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0x0010, pktUDP(port, port, nil))), verdictNext},
		{"v4 truncated l4", pktEther(etherTypeIPv4, pktIPv4(protoTCP, nil, 0, []byte{0x10})), verdictNext},
		{"v6 udp other", pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(53, 40000, nil))), verdictNext},
		{"v6 extension header", pktEther(etherTypeIPv6, pktIPv6(protoHopByHop, pktUDP(port, port, nil))), verdictNext},
		{"arp", pktEther(etherTypeARP, make([]byte, 28)), verdictNext},
	}
	var want Stats
	for _, c := range cases {
		if got := runProg(t, p, c.pkt); got != c.want {
			t.Errorf("%s: verdict %s, want %s", c.name, verdictString(got), verdictString(c.want))
		}
		if c.want == verdictDrop {
			want.Dropped++
		} else {
			want.Passed++
		}
	}
	if got := progStats(t, p); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestProgramPass(t *testing.T) {
	requireBPF(t)
	p := loadProgram(t, ProgramSpec{Name: "pass"})
	pkts := [][]byte{
		pktEther(etherTypeIPv4, pktIPv4(protoTCP, nil, 0, pktTCP(1, 2))),
		pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(3, 4, nil))),
		pktEther(etherTypeARP, make([]byte, 28)),
	}
	for _, pkt := range pkts {
		if got := runProg(t, p, pkt); got != verdictNext {
			t.Errorf("verdict %s, want %s", verdictString(got), verdictString(verdictNext))
		}
	}
	const repeat = 7
	ret, err := kprog(p).Run(&ebpf.RunOptions{Data: pkts[0], Repeat: repeat})
	if err != nil || ret != verdictNext {
		t.Fatalf("repeated run: verdict %s, %v", verdictString(ret), err)
	}
	if got, want := progStats(t, p), (Stats{Passed: uint64(len(pkts) + repeat)}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestProgramConsts(t *testing.T) {
	requireBPF(t)
	mustLoadFail(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 70000}},
		`constant "port": 70000 does not fit in __u16`)
	mustLoadFail(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": -1}},
		`constant "port": -1 does not fit in __u16`)
	mustLoadFail(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"prot": 1}},
		`unknown constant "prot"`, `valid constants are "port"`)
	mustLoadFail(t, ProgramSpec{Name: "pass", Consts: map[string]int64{"port": 1}},
		`unknown constant "port"`, "no constants")
	// The largest value fits.
	p := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 65535}})
	if got := runProg(t, p, pktEther(etherTypeIPv4, pktIPv4(protoUDP, nil, 0, pktUDP(1, 65535, nil)))); got != verdictDrop {
		t.Errorf("port 65535: verdict %s, want drop", verdictString(got))
	}

	// Every width and signedness, at the edges of its range. sum_consts
	// returns the low 32 bits of the sum of its constants, computed in C
	// as a signed 64-bit value: any value written with the wrong size or
	// sign changes it.
	consts := map[string]int64{
		"c_s8":   -128,
		"c_u8":   255,
		"c_s16":  -32768,
		"c_u16":  65535,
		"c_s32":  -2147483648,
		"c_u32":  4294967295,
		"c_s64":  -(1 << 62),
		"c_u64":  1<<62 + 12345,
		"c_bool": 1,
	}
	var sum int64
	for _, v := range consts {
		sum += v
	}
	p = loadProgram(t, ProgramSpec{Path: multiObject, Section: "sum_consts", Consts: consts})
	if got := runProg(t, p, pktEther(etherTypeARP, make([]byte, 28))); got != uint32(sum) {
		t.Errorf("sum_consts returned %#x, want %#x", got, uint32(sum))
	}
	for _, c := range []struct {
		name string
		val  int64
		typ  string
	}{
		{"c_s8", 128, "__s8"}, {"c_s8", -129, "__s8"}, {"c_u8", 256, "__u8"}, {"c_u8", -1, "__u8"},
		{"c_s16", 32768, "__s16"}, {"c_u16", -1, "__u16"}, {"c_s32", 1 << 31, "__s32"},
		{"c_s32", -1<<31 - 1, "__s32"}, {"c_u32", 1 << 32, "__u32"}, {"c_u64", -1, "__u64"},
		{"c_bool", 2, "_Bool"},
	} {
		mustLoadFail(t, ProgramSpec{Path: multiObject, Section: "sum_consts", Consts: map[string]int64{c.name: c.val}},
			fmt.Sprintf("constant %q: %d does not fit in %s", c.name, c.val, c.typ))
	}
}

func TestProgramUnknownName(t *testing.T) {
	err := mustLoadFail(t, ProgramSpec{Name: "drop_prot"}, `"drop_prot"`, `"drop_flow", "drop_port", "lb", "mirror", "pass", "policy_router", "redirect_peer", "xdp_drop_port", "xdp_pass"`)
	if !errors.Is(err, bpf.ErrUnknown) {
		t.Errorf("error %v does not wrap bpf.ErrUnknown", err)
	}
	mustLoadFail(t, ProgramSpec{}, "neither")
	mustLoadFail(t, ProgramSpec{Name: "pass", Path: dropPortObject}, "not both")
	mustLoadFail(t, ProgramSpec{Name: "pass", Section: "tc"}, "section")
}

func TestProgramUserObject(t *testing.T) {
	requireBPF(t)
	// By ELF section name and by function name.
	for _, section := range []string{"tc", "drop_port"} {
		p := loadProgram(t, ProgramSpec{Path: dropPortObject, Section: section, Consts: map[string]int64{"port": 53}})
		if p.Name() != "drop_port" {
			t.Errorf("section %q: name %q, want drop_port", section, p.Name())
		}
		if got := runProg(t, p, pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(40000, 53, nil)))); got != verdictDrop {
			t.Errorf("section %q: verdict %s, want drop", section, verdictString(got))
		}
		if got := runProg(t, p, pktEther(etherTypeIPv6, pktIPv6(protoUDP, pktUDP(40000, 54, nil)))); got != verdictNext {
			t.Errorf("section %q: verdict %s, want next", section, verdictString(got))
		}
		if got, want := progStats(t, p), (Stats{Passed: 1, Dropped: 1}); got != want {
			t.Errorf("section %q: stats %+v, want %+v", section, got, want)
		}
	}
	// A single-program object needs no section.
	p := loadProgram(t, ProgramSpec{Path: dropPortObject})
	if p.Name() != "drop_port" {
		t.Errorf("name %q, want drop_port", p.Name())
	}

	// Several programs: one must be chosen.
	mustLoadFail(t, ProgramSpec{Path: multiObject}, "3 programs", "shoot", "sum_consts", "xdp_pass")
	err := mustLoadFail(t, ProgramSpec{Path: multiObject, Section: "nope"}, `"nope"`, `shoot (section "tcx/egress")`)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing section: error %v does not wrap ErrNotFound", err)
	}
	shoot := loadProgram(t, ProgramSpec{Path: multiObject, Section: "tcx/egress"})
	if shoot.Name() != "shoot" {
		t.Errorf("name %q, want shoot", shoot.Name())
	}
	if got := runProg(t, shoot, pktEther(etherTypeARP, make([]byte, 28))); got != verdictDrop {
		t.Errorf("shoot: verdict %s, want %s", verdictString(got), verdictString(verdictDrop))
	}
	// multi's "stats" map has 32-bit values: not a stats map.
	if _, err := shoot.Stats(); !errors.Is(err, ErrNoStats) {
		t.Errorf("stats of shoot: %v, want ErrNoStats", err)
	}
	// XDP programs load, but only attach to the xdp hook.
	x, err := LoadProgram(ProgramSpec{Path: multiObject, Section: "xdp"})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Type() != "XDP" {
		t.Errorf("type %s, want XDP", x.Type())
	}
	if err := checkHookType(x, HookIngress); err == nil || !strings.Contains(err.Error(), "tcx hooks take SchedCLS programs") {
		t.Errorf("XDP program on ingress: %v", err)
	}
	if err := checkHookType(shoot, HookXDP); err == nil || !strings.Contains(err.Error(), "the xdp hook takes XDP programs") {
		t.Errorf("SchedCLS program on xdp: %v", err)
	}
}

func TestProgramBadObjects(t *testing.T) {
	requireBPF(t)
	dir := t.TempDir()

	err := mustLoadFail(t, ProgramSpec{Path: filepath.Join(dir, "missing.o")}, "missing.o", "no such file")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: error %v does not wrap ErrNotFound", err)
	}

	text := filepath.Join(dir, "text.o")
	if err := os.WriteFile(text, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustLoadFail(t, ProgramSpec{Path: text}, "text.o", "not an ELF object")

	obj, err := os.ReadFile(dropPortObject)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, 100, len(obj) / 2, len(obj) - 16} {
		short := filepath.Join(dir, fmt.Sprintf("short%d.o", n))
		if err := os.WriteFile(short, obj[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		mustLoadFail(t, ProgramSpec{Path: short}, short, "truncated or corrupt")
	}
	// Truncated inside a section's contents, past the headers.
	for _, n := range []int{len(obj) / 2, len(obj) - 16} {
		corrupt := slices.Clone(obj)
		clear(corrupt[64:n])
		path := filepath.Join(dir, fmt.Sprintf("corrupt%d.o", n))
		if err := os.WriteFile(path, corrupt, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := LoadProgram(ProgramSpec{Path: path})
		if err == nil {
			p.Close()
			t.Errorf("object with bytes 64..%d zeroed loaded", n)
		}
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mustLoadFail(t, ProgramSpec{Path: exe}, "not BPF")

	err = mustLoadFail(t, ProgramSpec{Path: badObject}, "unchecked", "the verifier rejected it", "verifier log (last ")
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v does not wrap *ebpf.VerifierError", err)
	}
	msg := err.Error()
	if len(ve.Log) <= verifierLogLines+2 {
		t.Fatalf("verifier log has only %d lines; the test needs a longer one", len(ve.Log))
	}
	// A first line, a header, and the log's tail.
	if n := strings.Count(msg, "\n") + 1; n != verifierLogLines+2 {
		t.Errorf("error has %d lines, want %d:\n%s", n, verifierLogLines+2, msg)
	}
	if !strings.HasSuffix(msg, ve.Log[len(ve.Log)-1]) {
		t.Errorf("error does not end with the log's last line %q:\n%s", ve.Log[len(ve.Log)-1], msg)
	}
	if first := ve.Log[0]; strings.Contains(msg, first) {
		t.Errorf("error contains the log's first line %q:\n%s", first, msg)
	}
	t.Logf("verifier error:\n%s", msg)
}

func TestProgramClose(t *testing.T) {
	requireBPF(t)
	p := loadProgram(t, ProgramSpec{Name: "pass"})
	id := p.ID()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := p.Stats(); err == nil {
		t.Error("stats of a closed program succeeded")
	}
	if _, err := AttachProgram(p, nil, 1, HookIngress, AttachOptions{}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("attach closed program: %v", err)
	}
	// The kernel unloads it once its last fd is closed, which happens
	// asynchronously (RCU); so only check the ID was real.
	if id == 0 {
		t.Error("program had ID 0")
	}
}

func TestHook(t *testing.T) {
	for _, name := range []string{"ingress", "egress", "primary", "peer", "xdp"} {
		h, err := ParseHook(name)
		if err != nil {
			t.Fatalf("parse %q: %v", name, err)
		}
		if h.String() != name {
			t.Errorf("ParseHook(%q).String() = %q", name, h)
		}
	}
	hooks := map[Hook]bool{HookIngress: true, HookEgress: true, HookPrimary: true, HookPeer: true, HookXDP: true}
	if len(hooks) != 5 || hooks[0] {
		t.Errorf("hooks are not distinct and non-zero: %v", hooks)
	}
	for _, bad := range []string{"", "tc", "Ingress", "XDP"} {
		_, err := ParseHook(bad)
		if err == nil {
			t.Errorf("ParseHook(%q) succeeded", bad)
			continue
		}
		for _, want := range []string{`"ingress"`, `"egress"`, `"primary"`, `"peer"`, `"xdp"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParseHook(%q): error %q does not name %s", bad, err, want)
			}
		}
	}
	if s := Hook(0).String(); s != "Hook(0)" {
		t.Errorf("Hook(0) = %q", s)
	}
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(tb testing.TB, major, minor int) bool {
	tb.Helper()
	rel := KernelRelease()
	var maj, min int
	if _, err := fmt.Sscanf(rel, "%d.%d", &maj, &min); err != nil {
		tb.Fatalf("parse kernel release %q: %v", rel, err)
	}
	return maj > major || (maj == major && min >= minor)
}

func TestHaveTCX(t *testing.T) {
	requireBPF(t)
	err := HaveTCX()
	if kernelAtLeast(t, 6, 6) {
		if err != nil {
			t.Fatalf("kernel %s: HaveTCX: %v", KernelRelease(), err)
		}
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("kernel %s: HaveTCX: %v, want ErrNotSupported", KernelRelease(), err)
	}
	if err2 := HaveTCX(); !errors.Is(err2, err) && err2 != err {
		t.Errorf("second probe: %v, first: %v", err2, err)
	}
}

// requireTCX skips tests that attach to tcx hooks on kernels without them.
func requireTCX(tb testing.TB) {
	tb.Helper()
	requireBPF(tb)
	if !testenv.TCX(tb) {
		testenv.SkipBecause(tb, testenv.NoTCX, "kernel "+KernelRelease())
	}
}

// bpftoolDevProg is a program bpftool lists on a device.
type bpftoolDevProg struct {
	Devname string `json:"devname"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	ProgID  uint32 `json:"prog_id"`
}

// bpftoolNet runs `bpftool -j net show dev name` inside ns and returns the
// programs attached to the device's tc, tcx and netkit hooks.
func bpftoolNet(tb testing.TB, ns *Netns, name string) []bpftoolDevProg {
	tb.Helper()
	out := bpftool(tb, ns, "net", "show", "dev", name)
	var res []struct {
		TC []bpftoolDevProg `json:"tc"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("parse bpftool output %q: %v", out, err)
	}
	var progs []bpftoolDevProg
	for _, r := range res {
		progs = append(progs, r.TC...)
	}
	return progs
}

// bpftool runs bpftool in JSON mode inside ns: the process is started from
// a thread in ns, so it inherits the namespace.
func bpftool(tb testing.TB, ns *Netns, args ...string) []byte {
	tb.Helper()
	path, err := exec.LookPath("bpftool")
	if err != nil {
		testenv.Skipf(tb, "bpftool not installed")
	}
	var out []byte
	err = ns.Do(func() error {
		cmd := exec.Command(path, append([]string{"-j"}, args...)...)
		var err error
		out, err = cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return err
	})
	if err != nil {
		tb.Fatalf("bpftool %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// bpftoolLinks returns what `bpftool link show`, run inside ns, says
// about every BPF link, by link ID.
func bpftoolLinks(tb testing.TB, ns *Netns) map[uint32]map[string]any {
	tb.Helper()
	out := bpftool(tb, ns, "link", "show")
	var links []map[string]any
	if err := json.Unmarshal(out, &links); err != nil {
		tb.Fatalf("parse bpftool output %q: %v", out, err)
	}
	byID := map[uint32]map[string]any{}
	for _, l := range links {
		if id, ok := l["id"].(float64); ok {
			byID[uint32(id)] = l
		}
	}
	return byID
}

func TestProgramAttachTCX(t *testing.T) {
	requireTCX(t)
	a, b := testNetns(t), testNetns(t)
	_, bIdx := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})

	drop := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 9}})
	pass := loadProgram(t, ProgramSpec{Name: "pass"})

	if got := bpftoolNet(t, b, "b0"); len(got) != 0 {
		t.Fatalf("b0 has programs before attaching: %+v", got)
	}
	in, err := AttachProgram(drop, b, bIdx, HookIngress, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Detach() })
	out, err := AttachProgram(pass, b, bIdx, HookEgress, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Detach() })
	if in.Hook() != HookIngress || out.Hook() != HookEgress {
		t.Errorf("hooks %s, %s", in.Hook(), out.Hook())
	}
	if in.ID() == 0 || in.ID() == out.ID() {
		t.Errorf("link IDs %d, %d", in.ID(), out.ID())
	}

	want := map[string]uint32{"tcx/ingress": drop.ID(), "tcx/egress": pass.ID()}
	got := map[string]uint32{}
	for _, p := range bpftoolNet(t, b, "b0") {
		if p.Devname != "b0" {
			t.Errorf("bpftool lists a program on %q: %+v", p.Devname, p)
		}
		got[p.Kind] = p.ProgID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bpftool: attached %v, want %v", got, want)
	}
	// The veth end in the other namespace is untouched.
	if got := bpftoolNet(t, a, "a0"); len(got) != 0 {
		t.Errorf("a0 has programs: %+v", got)
	}
	links := bpftoolLinks(t, b)
	for _, c := range []struct {
		a          *Attachment
		prog       uint32
		attachType string
	}{{in, drop.ID(), "tcx_ingress"}, {out, pass.ID(), "tcx_egress"}} {
		info, ok := links[c.a.ID()]
		if !ok {
			t.Errorf("bpftool does not know link %d", c.a.ID())
			continue
		}
		if info["type"] != "tcx" || info["prog_id"] != float64(c.prog) || info["attach_type"] != c.attachType || info["ifindex"] != float64(bIdx) || info["devname"] != "b0" {
			t.Errorf("link %d: bpftool says %v; want tcx link of program %d, %s, b0 (ifindex %d)", c.a.ID(), info, c.prog, c.attachType, bIdx)
		}
	}

	// Closing the program does not detach it: the link holds it.
	drop.Close()
	if got := bpftoolNet(t, b, "b0"); len(got) != 2 {
		t.Errorf("after closing drop_port, bpftool lists %+v", got)
	}

	if err := in.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := in.Detach(); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	progs := bpftoolNet(t, b, "b0")
	if len(progs) != 1 || progs[0].Kind != "tcx/egress" {
		t.Errorf("after detaching ingress, bpftool lists %+v", progs)
	}
	if _, ok := bpftoolLinks(t, b)[in.ID()]; ok {
		t.Errorf("link %d still exists after detach", in.ID())
	}
	if err := out.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := bpftoolNet(t, b, "b0"); len(got) != 0 {
		t.Errorf("after detaching both, bpftool lists %+v", got)
	}
}

func TestProgramAttachErrors(t *testing.T) {
	requireTCX(t)
	a, b := testNetns(t), testNetns(t)
	aIdx, _ := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	p := loadProgram(t, ProgramSpec{Name: "pass"})

	// Ifindexes are resolved in the namespace given.
	if _, err := AttachProgram(p, a, 999, HookIngress, AttachOptions{}); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("attach to a missing ifindex: %v", err)
	}
	if _, err := AttachProgram(p, a, aIdx, Hook(0), AttachOptions{}); err == nil || !strings.Contains(err.Error(), "invalid hook") {
		t.Errorf("attach to Hook(0): %v", err)
	}

	// Netkit hooks on a veth.
	_, err := AttachProgram(p, a, aIdx, HookPrimary, AttachOptions{})
	if err == nil {
		t.Fatal("attached to the netkit primary hook of a veth")
	}
	if !testenv.Netkit(t) {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("kernel without netkit: %v does not wrap ErrNotSupported", err)
		}
	} else if !strings.Contains(err.Error(), "not a netkit device") {
		t.Errorf("netkit hook on a veth: %v", err)
	}
	t.Logf("netkit hook on a veth: %v", err)
}

// udpSocket returns a UDP socket created in ns and bound to addr.
func udpSocket(tb testing.TB, ns *Netns, addr string) *net.UDPConn {
	tb.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func udpSend(tb testing.TB, c *net.UDPConn, to string, msg string) {
	tb.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), netip.MustParseAddrPort(to)); err != nil {
		tb.Fatalf("send to %s: %v", to, err)
	}
}

func udpRecv(tb testing.TB, c *net.UDPConn) string {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(progTestSafety))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		tb.Fatalf("receive on %s: %v", c.LocalAddr(), err)
	}
	return string(buf[:n])
}

// udpQueued returns the datagrams waiting on c without blocking.
func udpQueued(tb testing.TB, c *net.UDPConn) []string {
	tb.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var msgs []string
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					rerr = err
				}
				return true
			}
			msgs = append(msgs, string(buf[:n]))
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		tb.Fatal(err)
	}
	return msgs
}

func TestProgramTCXTraffic(t *testing.T) {
	requireTCX(t)
	a, b := testNetns(t), testNetns(t)
	_, bIdx := testVeth(t, a, "a0", netip.MustParsePrefix("10.7.0.1/24"), b, "b0", netip.MustParsePrefix("10.7.0.2/24"))

	const dropped, allowed = 7777, 7778
	sender := udpSocket(t, a, "10.7.0.1:0")
	dropSock := udpSocket(t, b, fmt.Sprintf("10.7.0.2:%d", dropped))
	okSock := udpSocket(t, b, fmt.Sprintf("10.7.0.2:%d", allowed))
	dropAddr := fmt.Sprintf("10.7.0.2:%d", dropped)
	okAddr := fmt.Sprintf("10.7.0.2:%d", allowed)

	// Without the program, the port is reachable: the test can fail.
	udpSend(t, sender, dropAddr, "before")
	if got := udpRecv(t, dropSock); got != "before" {
		t.Fatalf("before attaching: received %q", got)
	}

	p := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": dropped}})
	att, err := AttachProgram(p, b, bIdx, HookIngress, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { att.Detach() })

	const n = 20
	for i := range n {
		udpSend(t, sender, dropAddr, fmt.Sprintf("drop %d", i))
		udpSend(t, sender, okAddr, fmt.Sprintf("ok %d", i))
	}
	for i := range n {
		if got, want := udpRecv(t, okSock), fmt.Sprintf("ok %d", i); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
	// Every datagram to the dropped port has met the program once the drop
	// counter reaches n (veth delivery is normally done before send
	// returns; this only guards against deferred softirq processing).
	deadline := time.Now().Add(progTestSafety)
	var s Stats
	for s = progStats(t, p); s.Dropped < n && time.Now().Before(deadline); s = progStats(t, p) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Dropped != n {
		t.Errorf("dropped %d, want %d", s.Dropped, n)
	}
	if s.Passed < n {
		t.Errorf("passed %d, want at least %d", s.Passed, n)
	}
	if got := udpQueued(t, dropSock); len(got) != 0 {
		t.Errorf("datagrams to the dropped port arrived: %q", got)
	}
	t.Logf("stats %+v", s)

	// Detached, the port is reachable again.
	if err := att.Detach(); err != nil {
		t.Fatal(err)
	}
	udpSend(t, sender, dropAddr, "after")
	if got := udpRecv(t, dropSock); got != "after" {
		t.Fatalf("after detaching: received %q", got)
	}
}

// tunDevice creates an L3 tun device (no Ethernet header, no packet info)
// named name in ns, addresses and sets it up, and returns its file and
// ifindex. The device goes away when the file is closed.
func tunDevice(tb testing.TB, ns *Netns, name string, addr netip.Prefix) (*os.File, int) {
	tb.Helper()
	var f *os.File
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun")
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			testenv.Skipf(tb, "no /dev/net/tun")
		}
		tb.Fatalf("create tun %s: %v", name, err)
	}
	tb.Cleanup(func() { f.Close() })
	l, err := ns.Handle().LinkByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}
	if err := ns.Handle().AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
		tb.Fatal(err)
	}
	if err := ns.Handle().LinkSetUp(l); err != nil {
		tb.Fatal(err)
	}
	return f, l.Attrs().Index
}

// tunReadUDP reads IP packets from a tun device until it gets an IPv4 UDP
// datagram, and returns its destination port and payload.
func tunReadUDP(tb testing.TB, f *os.File) (uint16, string) {
	tb.Helper()
	f.SetReadDeadline(time.Now().Add(progTestSafety))
	buf := make([]byte, 2048)
	for {
		n, err := f.Read(buf)
		if err != nil {
			tb.Fatalf("read tun: %v", err)
		}
		pkt := buf[:n]
		if n < 28 || pkt[0]>>4 != 4 || pkt[9] != protoUDP {
			continue // IPv6 router solicitations and the like
		}
		l4 := pkt[int(pkt[0]&0xf)*4:]
		return binary.BigEndian.Uint16(l4[2:]), string(l4[8:])
	}
}

// TestProgramL3Traffic runs drop_port on a device without link-layer
// headers, whose packets start at the IP header at the hooks: a tun device,
// on tcx egress (packets the namespace sends into the tun) and ingress
// (packets written to it). Netkit is not such a device: its hooks see 14
// bytes of link-layer header in l3 mode too (TestNetkitModes checks it).
func TestProgramL3Traffic(t *testing.T) {
	requireBPF(t)
	// The microVMs have no /dev/net/tun, so this test runs only on the
	// host: a host without tcx must not skip it silently.
	if !testenv.TCX(t) {
		testenv.Skipf(t, "the host kernel %s has no tcx (Linux < 6.6), and the microVMs have no tun device", KernelRelease())
	}
	ns := testNetns(t)
	tun, idx := tunDevice(t, ns, "tun0", netip.MustParsePrefix("10.8.0.1/24"))

	const dropped, allowed = 7777, 7778
	p := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": dropped}})

	t.Run("egress", func(t *testing.T) {
		att, err := AttachProgram(p, ns, idx, HookEgress, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer att.Detach()
		before := progStats(t, p)
		sender := udpSocket(t, ns, "10.8.0.1:0")
		const n = 10
		for i := range n {
			udpSend(t, sender, fmt.Sprintf("10.8.0.2:%d", dropped), fmt.Sprintf("drop %d", i))
			udpSend(t, sender, fmt.Sprintf("10.8.0.2:%d", allowed), fmt.Sprintf("ok %d", i))
		}
		// tcx egress runs in the sender's system call.
		s := progStats(t, p)
		if got := s.Dropped - before.Dropped; got != n {
			t.Errorf("dropped %d, want %d", got, n)
		}
		if got := s.Passed - before.Passed; got < n {
			t.Errorf("passed %d, want at least %d", got, n)
		}
		// The tun queue is FIFO, so a datagram to the dropped port that
		// got through would be read before the last allowed one.
		for i := range n {
			port, payload := tunReadUDP(t, tun)
			if want := fmt.Sprintf("ok %d", i); port != allowed || payload != want {
				t.Fatalf("read port %d %q, want port %d %q", port, payload, allowed, want)
			}
		}
	})

	t.Run("ingress", func(t *testing.T) {
		att, err := AttachProgram(p, ns, idx, HookIngress, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer att.Detach()
		dropSock := udpSocket(t, ns, fmt.Sprintf("10.8.0.1:%d", dropped))
		okSock := udpSocket(t, ns, fmt.Sprintf("10.8.0.1:%d", allowed))
		before := progStats(t, p)
		packet := func(dport uint16, msg string) []byte {
			pkt := pktIPv4(protoUDP, nil, 0, pktUDP(40000, dport, []byte(msg)))
			copy(pkt[12:], []byte{10, 8, 0, 2})
			copy(pkt[16:], []byte{10, 8, 0, 1})
			binary.BigEndian.PutUint16(pkt[10:], 0)
			binary.BigEndian.PutUint16(pkt[10:], ipChecksum(pkt[:20]))
			return pkt // UDP checksum 0: none, valid for IPv4
		}
		const n = 10
		for i := range n {
			for _, pkt := range [][]byte{packet(dropped, fmt.Sprintf("drop %d", i)), packet(allowed, fmt.Sprintf("ok %d", i))} {
				if _, err := tun.Write(pkt); err != nil {
					t.Fatalf("write tun: %v", err)
				}
			}
		}
		for i := range n {
			if got, want := udpRecv(t, okSock), fmt.Sprintf("ok %d", i); got != want {
				t.Fatalf("received %q, want %q", got, want)
			}
		}
		// A tun write delivers the packet before it returns.
		s := progStats(t, p)
		if got := s.Dropped - before.Dropped; got != n {
			t.Errorf("dropped %d, want %d", got, n)
		}
		if got := s.Passed - before.Passed; got != n {
			t.Errorf("passed %d, want %d", got, n)
		}
		if got := udpQueued(t, dropSock); len(got) != 0 {
			t.Errorf("datagrams to the dropped port arrived: %q", got)
		}
	})
}

// TestProgramAttachNetkit attaches to both netkit hooks and checks them
// with bpftool. It needs a kernel with netkit.
func TestProgramAttachNetkit(t *testing.T) {
	requireNetkit(t)
	a, b := testNetns(t), testNetns(t)
	nk := &netlink.Netkit{
		LinkAttrs: netlink.LinkAttrs{Name: "nk0"},
		Mode:      netlink.NETKIT_MODE_L3,
		Policy:    netlink.NETKIT_POLICY_FORWARD,
	}
	nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "nk1", Namespace: netlink.NsFd(b.Fd())})
	if err := a.Handle().LinkAdd(nk); err != nil {
		t.Fatalf("create netkit pair: %v", err)
	}
	setup := func(ns *Netns, name, addr string) int {
		l, err := ns.Handle().LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		p := netip.MustParsePrefix(addr)
		ipnet := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		if err := ns.Handle().AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
			t.Fatal(err)
		}
		if err := ns.Handle().LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	primary := setup(a, "nk0", "10.9.0.1/24")
	peer := setup(b, "nk1", "10.9.0.2/24")

	const dropped, allowed = 7777, 7778
	drop := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": dropped}})
	pass := loadProgram(t, ProgramSpec{Name: "pass"})

	if _, err := AttachProgram(pass, b, peer, HookPeer, AttachOptions{}); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Errorf("attach through the peer's ifindex: %v", err)
	}
	onPrimary, err := AttachProgram(pass, a, primary, HookPrimary, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { onPrimary.Detach() })
	onPeer, err := AttachProgram(drop, a, primary, HookPeer, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { onPeer.Detach() })

	got := map[string]uint32{}
	for _, p := range bpftoolNet(t, a, "nk0") {
		got[p.Kind] = p.ProgID
	}
	if want := map[string]uint32{"netkit/primary": pass.ID(), "netkit/peer": drop.ID()}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bpftool: attached %v, want %v", got, want)
	}

	// Packets the peer sends (b to a) meet drop_port. In l3 mode too, the
	// hook sees them with 14 bytes of link-layer header in front.
	sender := udpSocket(t, b, "10.9.0.2:0")
	dropSock := udpSocket(t, a, fmt.Sprintf("10.9.0.1:%d", dropped))
	okSock := udpSocket(t, a, fmt.Sprintf("10.9.0.1:%d", allowed))
	const n = 10
	for i := range n {
		udpSend(t, sender, fmt.Sprintf("10.9.0.1:%d", dropped), fmt.Sprintf("drop %d", i))
		udpSend(t, sender, fmt.Sprintf("10.9.0.1:%d", allowed), fmt.Sprintf("ok %d", i))
	}
	for i := range n {
		if got, want := udpRecv(t, okSock), fmt.Sprintf("ok %d", i); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
	// netkit runs the peer's program in the sender's system call.
	if s := progStats(t, drop); s.Dropped != n || s.Passed < n {
		t.Errorf("drop_port stats %+v, want %d dropped and at least %d passed", s, n, n)
	}
	if got := udpQueued(t, dropSock); len(got) != 0 {
		t.Errorf("datagrams to the dropped port arrived: %q", got)
	}

	if err := onPeer.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := onPrimary.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := bpftoolNet(t, a, "nk0"); len(got) != 0 {
		t.Errorf("after detaching, bpftool lists %+v", got)
	}
}
