package builtins

import (
	"context"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/datapath"
)

// TestProgRun runs bundled programs on built packets from a script: the
// verdicts as the hooks name them, the packet out, the maps' state.
func TestProgRun(t *testing.T) {
	out, err := runScript(t, `
drop = program("drop_port", port = 12345)
syn = tcp("10.0.0.1", "10.0.0.2", dport = 12345)
print(syn)
r = drop.run(syn)
print(r, r.code, r.packet == syn, r.ns_per_run >= 0)
print(drop.run(tcp("10.0.0.1", "10.0.0.2", dport = 12346)).verdict)
print(drop.run(udp("fd00::1", "fd00::2", sport = 12345, payload = b"\x00\x01"), repeat = 5))
print(stats(drop))
lb = program("lb")
lb.maps["vip"][0] = {"addr": "192.168.100.5"}
print(lb.run(tcp("10.0.0.2", "192.168.100.5")).verdict)
lb.maps["backends"][0] = {"ifindex": 1, "addr": "10.0.1.2"}
print(lb.run(tcp("10.0.0.2", "192.168.100.5")).verdict)
x = program("xdp_drop_port", port = 53)
print(x.run(udp("10.0.0.1", "10.0.0.2")).verdict, x.run(icmp("10.0.0.1", "10.0.0.2")).verdict)
p = packet(icmp("fd00::1", "fd00::2", type = "echo-reply", id = 7, seq = 9, vlan = 3).bytes)
print(p, p.proto, p.icmp_type, p.id, p.seq, p.vlan, p.sport, p.checksum_ok)
print(tcp("10.0.0.1", "10.0.0.2", flags = "SA", eth = eth(dst = "aa:bb:cc:dd:ee:ff")).eth_dst)
print(packet(b"\x01\x02"))
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `tcp 10.0.0.1:40000 > 10.0.0.2:12345 [S] len 0
run_result(DROP, tcp 10.0.0.1:40000 > 10.0.0.2:12345 [S] len 0) 2 True True
NEXT
run_result(DROP, udp [fd00::1]:12345 > [fd00::2]:53 len 2)
stats(dropped = 6, passed = 1, redirected = 0)
DROP
REDIRECT
XDP_DROP XDP_PASS
vlan 3 icmp6 fd00::1 > fd00::2 echo-reply id 7 seq 9 len 0 icmp6 echo-reply 7 9 3 None True
aa:bb:cc:dd:ee:ff
ether type 0x0000 len 2 [truncated]
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestProgRunErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`program("pass").run(b"\x00")`, `run: run program pass: a packet of 1 bytes is too short`},
		{`program("pass").run("x")`, `run: pkt must be a packet (from tcp(), udp(), icmp() or packet()) or bytes, not "x" (string)`},
		{`program("pass").run(tcp("10.0.0.1", "10.0.0.2"), repeat = 0)`, `repeat 0 is out of range`},
		{`tcp("10.0.0.1", "fd00::2")`, `tcp: source 10.0.0.1 and destination fd00::2 must both be IPv4 or both IPv6`},
		{`tcp("10.0.0.1", "10.0.0.2", flags = "SX")`, `tcp: unknown TCP flag 'X' in "SX"`},
		{`udp("10.0.0.1", "10.0.0.2", vlan = 4096)`, `udp: vlan=4096 is not a VLAN ID 0..4095`},
		{`udp("10.0.0.1", "10.0.0.2", ttl = 0)`, `udp: ttl=0 is out of range 1..255`},
		{`icmp("10.0.0.1", "10.0.0.2", type = "ping")`, `icmp: unknown ICMP type "ping"`},
		{`icmp("10.0.0.1", "10.0.0.2", id = 65536)`, `icmp: id=65536 is out of range 0..65535`},
		{`eth(src = "nope")`, `eth: src="nope" is not an Ethernet address`},
		{`tcp("10.0.0.1", "10.0.0.2", eth = "x")`, `tcp: eth must be an Ethernet header from eth(src=, dst=), not "x" (string)`},
		{`tcp("10.0.0.1", "10.0.0.2") < tcp("10.0.0.1", "10.0.0.2")`, `packets compare with == and != only`},
	} {
		_, err := runScript(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.src, err, c.want)
		}
	}
}

// TestProgRunDryRun checks that a lab of stand-ins refuses to run
// programs, and says why.
func TestProgRunDryRun(t *testing.T) {
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: t.TempDir(), Script: t.Name(), Backend: datapath.NewRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	r := NewRun(Options{Lab: lab, Context: context.Background(), Stdout: &strings.Builder{}})
	_, err = r.ExecFile(r.Thread("t.star"), "t.star", `program("pass").run(tcp("10.0.0.1", "10.0.0.2"))`)
	if want := "run: run program pass: a dry run or graph does not load programs into the kernel, so it cannot run them"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}
