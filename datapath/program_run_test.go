package datapath

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/nkscript/nkscript/internal/packet"
)

// frame builds a packet with the packet package.
func frame(tb testing.TB, p packet.Packet) []byte {
	tb.Helper()
	b, err := p.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// tcpSYN is a TCP SYN from src:40000 to dst:dport.
func tcpSYN(tb testing.TB, src, dst string, dport uint16) []byte {
	return frame(tb, packet.Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Proto: packet.ProtoTCP, SrcPort: 40000, DstPort: dport, Flags: packet.FlagSYN})
}

// udpTo is a UDP datagram from src:5353 to dst:dport.
func udpTo(tb testing.TB, src, dst string, dport uint16) []byte {
	return frame(tb, packet.Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Proto: packet.ProtoUDP, SrcPort: 5353, DstPort: dport, Payload: []byte("hello")})
}

// echo is an ICMP or ICMPv6 echo request.
func echo(tb testing.TB, src, dst string) []byte {
	p := packet.Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: packet.ProtoICMP, ICMPType: 8, ID: 1, Seq: 1}
	if p.Src.Is6() {
		p.Proto, p.ICMPType = packet.ProtoICMPv6, 128
	}
	return frame(tb, p)
}

// runCase is one packet and the verdict a program must give it.
type runCase struct {
	name    string
	pkt     []byte
	verdict string
}

// checkRuns runs p on each case's packet and checks the verdict and that
// the packet comes out as it went in (no bundled program rewrites).
func checkRuns(t *testing.T, p *Program, cases []runCase) {
	t.Helper()
	for _, c := range cases {
		res, err := p.run(c.pkt, 1, false)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Verdict != c.verdict {
			t.Errorf("%s %s: verdict %s (%d), want %s", p.Name(), c.name, res.Verdict, res.Code, c.verdict)
		}
		if !bytes.Equal(res.Out, c.pkt) {
			t.Errorf("%s %s: packet out %s, want it unchanged: %s", p.Name(), c.name, packet.Parse(res.Out), packet.Parse(c.pkt))
		}
	}
}

// TestRunBundled runs every bundled program on chosen packets, its maps
// set up as a lab would, and checks verdicts, output and counters.
func TestRunBundled(t *testing.T) {
	requireBPF(t)
	t.Run("pass", func(t *testing.T) {
		p := loadBundled(t, "pass")
		checkRuns(t, p, []runCase{
			{"tcp", tcpSYN(t, "10.0.0.1", "10.0.0.2", 80), "NEXT"},
			{"icmp6", echo(t, "fd00::1", "fd00::2"), "NEXT"},
			{"arp", frame(t, packet.Packet{EtherType: 0x0806, Payload: make([]byte, 28)}), "NEXT"},
		})
		if s := progStats(t, p); s.Passed != 3 {
			t.Errorf("stats %+v, want 3 passed", s)
		}
	})
	t.Run("drop_port", func(t *testing.T) {
		p := loadProgram(t, ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 12345}})
		checkRuns(t, p, []runCase{
			{"syn to 12345", tcpSYN(t, "10.0.0.1", "10.0.0.2", 12345), "DROP"},
			{"syn to 12346", tcpSYN(t, "10.0.0.1", "10.0.0.2", 12346), "NEXT"},
			{"udp6 to 12345", udpTo(t, "fd00::1", "fd00::2", 12345), "DROP"},
			{"vlan-tagged syn", frame(t, packet.Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
				Proto: packet.ProtoTCP, DstPort: 12345, HasVLAN: true, VLAN: 5}), "NEXT"},
			{"ping", echo(t, "10.0.0.1", "10.0.0.2"), "NEXT"},
		})
		if s := progStats(t, p); s.Dropped != 2 || s.Passed != 3 {
			t.Errorf("stats %+v, want 2 dropped, 3 passed", s)
		}
	})
	t.Run("drop_flow", func(t *testing.T) {
		p := loadProgram(t, ProgramSpec{Name: "drop_flow", Consts: map[string]int64{"src_len": 24, "proto": 6, "port": 80},
			AddrConsts: map[string]netip.Addr{"src": netip.MustParseAddr("10.0.1.0")}})
		checkRuns(t, p, []runCase{
			{"tcp from the prefix to 80", tcpSYN(t, "10.0.1.7", "10.0.2.2", 80), "DROP"},
			{"tcp from elsewhere", tcpSYN(t, "10.0.3.7", "10.0.2.2", 80), "NEXT"},
			{"udp from the prefix", udpTo(t, "10.0.1.7", "10.0.2.2", 80), "NEXT"},
			{"tcp to 81", tcpSYN(t, "10.0.1.7", "10.0.2.2", 81), "NEXT"},
			{"ipv6", tcpSYN(t, "fd00::1", "fd00::2", 80), "NEXT"},
		})
	})
	t.Run("policy_router", func(t *testing.T) {
		p := loadBundled(t, "policy_router")
		if err := mapOf(t, p, "policy_routes_v4").Put("192.168.100.0/24", map[string]any{"ifindex": int64(1), "next_hop": "10.0.1.1"}); err != nil {
			t.Fatal(err)
		}
		checkRuns(t, p, []runCase{
			{"from the policy's prefix", tcpSYN(t, "192.168.100.5", "10.0.2.2", 80), "REDIRECT"},
			{"from elsewhere", tcpSYN(t, "10.0.1.2", "10.0.2.2", 80), "NEXT"},
			{"ipv6 without policy", udpTo(t, "fd00::1", "fd00::2", 53), "NEXT"},
		})
		if s := progStats(t, p); s.Redirected != 1 || s.Passed != 2 {
			t.Errorf("stats %+v, want 1 redirected, 2 passed", s)
		}
	})
	t.Run("lb", func(t *testing.T) {
		p := loadBundled(t, "lb")
		if err := mapOf(t, p, "vip").Put(int64(0), map[string]any{"addr": "192.168.100.5"}); err != nil {
			t.Fatal(err)
		}
		checkRuns(t, p, []runCase{{"to the VIP, no backends", tcpSYN(t, "10.0.0.2", "192.168.100.5", 80), "DROP"}})
		if err := mapOf(t, p, "backends").Put(int64(0), map[string]any{"ifindex": int64(1), "addr": "10.0.1.2"}); err != nil {
			t.Fatal(err)
		}
		checkRuns(t, p, []runCase{
			{"to the VIP", tcpSYN(t, "10.0.0.2", "192.168.100.5", 80), "REDIRECT"},
			{"elsewhere", tcpSYN(t, "10.0.0.2", "10.0.1.2", 80), "NEXT"},
		})
		if s := progStats(t, p); s.Redirected != 1 || s.Dropped != 1 || s.Passed != 1 {
			t.Errorf("stats %+v, want 1 redirected, 1 dropped, 1 passed", s)
		}
	})
	t.Run("mirror", func(t *testing.T) {
		p := loadBundled(t, "mirror")
		ns := testNetns(t)
		err := ns.Do(func() error {
			checkRuns(t, p, []runCase{{"monitor off", udpTo(t, "10.0.0.1", "10.0.0.2", 53), "NEXT"}})
			if err := mapOf(t, p, "monitor").Put(int64(0), int64(1)); err != nil {
				return err
			}
			checkRuns(t, p, []runCase{{"monitor lo", udpTo(t, "10.0.0.1", "10.0.0.2", 53), "NEXT"}})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if s := progStats(t, p); s.Passed != 2 || s.Redirected != 1 {
			t.Errorf("stats %+v, want 2 passed, 1 redirected", s)
		}
	})
	t.Run("xdp", func(t *testing.T) {
		checkRuns(t, loadBundled(t, "xdp_pass"), []runCase{{"tcp", tcpSYN(t, "10.0.0.1", "10.0.0.2", 80), "XDP_PASS"}})
		p := loadProgram(t, ProgramSpec{Name: "xdp_drop_port", Consts: map[string]int64{"port": 12345}})
		checkRuns(t, p, []runCase{
			{"syn to 12345", tcpSYN(t, "10.0.0.1", "10.0.0.2", 12345), "XDP_DROP"},
			{"udp6 to 12345", udpTo(t, "fd00::1", "fd00::2", 12345), "XDP_DROP"},
			{"syn to 12346", tcpSYN(t, "10.0.0.1", "10.0.0.2", 12346), "XDP_PASS"},
			{"ping", echo(t, "10.0.0.1", "10.0.0.2"), "XDP_PASS"},
		})
	})
}

// TestRunRepeat checks that a repeated run counts every run in the maps
// and reports a time per run.
func TestRunRepeat(t *testing.T) {
	p := loadBundled(t, "pass")
	res, err := p.run(tcpSYN(t, "10.0.0.1", "10.0.0.2", 80), 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != "NEXT" || res.Code != -1 || res.PerRun <= 0 {
		t.Errorf("result %+v", res)
	}
	if s := progStats(t, p); s.Passed != 100 {
		t.Errorf("stats %+v, want 100 passed", s)
	}
}

func TestRunErrors(t *testing.T) {
	p := loadBundled(t, "pass")
	for _, c := range []struct {
		data   []byte
		repeat int
		want   string
	}{
		{make([]byte, 13), 1, "run program pass: a packet of 13 bytes is too short: the kernel wants at least an Ethernet header (14 bytes)"},
		{make([]byte, 14), 0, "run program pass: repeat 0 is out of range 1..4294967295"},
	} {
		if _, err := p.run(c.data, c.repeat, false); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	p.Close()
	if _, err := p.run(make([]byte, 14), 1, false); !errors.Is(err, errClosed) {
		t.Errorf("closed: %v", err)
	}
	rp, err := NewRecorder().LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.run(make([]byte, 14), 1, false); !errors.Is(err, ErrNotSupported) {
		t.Errorf("stand-in: %v, want ErrNotSupported", err)
	}
}

func TestVerdictName(t *testing.T) {
	for _, c := range []struct {
		typ    ebpf.ProgramType
		legacy bool
		code   int32
		want   string
	}{
		{ebpf.SchedCLS, false, -1, "NEXT"},
		{ebpf.SchedCLS, false, 0, "PASS"},
		{ebpf.SchedCLS, false, 2, "DROP"},
		{ebpf.SchedCLS, false, 7, "REDIRECT"},
		{ebpf.SchedCLS, false, 3, "CODE(3)"},
		{ebpf.SchedCLS, true, -1, "UNSPEC"},
		{ebpf.SchedCLS, true, 0, "OK"},
		{ebpf.SchedCLS, true, 2, "SHOT"},
		{ebpf.SchedCLS, true, 7, "REDIRECT"},
		{ebpf.XDP, false, 0, "XDP_ABORTED"},
		{ebpf.XDP, true, 1, "XDP_DROP"},
		{ebpf.XDP, false, 2, "XDP_PASS"},
		{ebpf.XDP, false, 3, "XDP_TX"},
		{ebpf.XDP, false, 4, "XDP_REDIRECT"},
		{ebpf.XDP, false, -1, "CODE(-1)"},
	} {
		if got := VerdictName(c.typ, c.legacy, c.code); got != c.want {
			t.Errorf("VerdictName(%s, %v, %d) = %s, want %s", c.typ, c.legacy, c.code, got, c.want)
		}
	}
}

// TestRunProgramLegacyNames checks that a program attached through
// legacy tc has its verdicts named as tc names them, and as tcx does
// once detached.
func TestRunProgramLegacyNames(t *testing.T) {
	requireBPF(t)
	lab, host := testLab(t)
	idx, _ := testVeth(t, host, "rl0", netip.MustParsePrefix("10.72.0.1/24"), host, "rl1", netip.MustParsePrefix("10.72.0.2/24"))
	p, err := lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 12345}})
	if err != nil {
		t.Fatal(err)
	}
	syn := tcpSYN(t, "10.0.0.1", "10.0.0.2", 12345)
	verdict := func() string {
		t.Helper()
		res, err := lab.RunProgram(p, syn, 1)
		if err != nil {
			t.Fatal(err)
		}
		return res.Verdict
	}
	if v := verdict(); v != "DROP" {
		t.Errorf("attached to nothing: %s, want DROP", v)
	}
	clone, err := p.kernelProgram()
	if err != nil {
		t.Fatal(err)
	}
	a, err := attachLegacyTC(p, clone, host, idx, HookIngress, AttachOptions{}, "attach")
	if err != nil {
		t.Fatal(err)
	}
	lab.mu.Lock()
	lab.attached = append(lab.attached, a)
	lab.mu.Unlock()
	if v := verdict(); v != "SHOT" {
		t.Errorf("attached through legacy tc: %s, want SHOT", v)
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if v := verdict(); v != "DROP" {
		t.Errorf("detached: %s, want DROP", v)
	}
}
