package builtins

import (
	"strings"
	"testing"
)

// noForwardLab is a -- r -- b, the router r not forwarding.
const noForwardLab = `
a = netns("$P-a")
r = netns("$P-r")
b = netns("$P-b")
ar = veth_pair("dr_a", "dr_ra", primary_ns = a, peer_ns = r)
rb = veth_pair("dr_rb", "dr_b", primary_ns = r, peer_ns = b)
ar.primary.addr("10.215.1.2/24").up()
ar.peer.addr("10.215.1.1/24").up()
rb.primary.addr("10.215.2.1/24").up()
rb.peer.addr("10.215.2.2/24").up()
route("default", via = "10.215.1.1", ns = a)
route("default", via = "10.215.2.1", ns = b)
`

func TestDropsExplainVerdicts(t *testing.T) {
	out, err := runScript(t, noForwardLab+`
expect_drop("10.215.2.2", proto = "icmp", src = a)
ds = drops()
for d in ds:
    if d.reason == "IP_INADDRERRORS":
        print(d.ns, d.dev, d.hook, d.program, d.why, d.proto, d.src, d.dst, d.count)
print(len(drops(since = ds[-1].seq)))
forwarding(ns = r)
drop = program("drop_port", port = 8080)
attach(drop, rb.primary, "egress")
expect_pass("10.215.2.2", port = 8080, src = a, timeout = "300ms")
`)
	wantOut := `ok: icmp netns("$P-a") -> 10.215.2.2 dropped in netns "$P-r" on dr_ra: forwarding disabled (IP_INADDRERRORS)
$P-r dr_ra None None forwarding disabled icmp 10.215.1.2 10.215.2.2 1
0
`
	if out != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out, wantOut)
	}
	if err == nil {
		t.Fatal("the expect_pass through drop_port passed")
	}
	want := `was not delivered: connect to 10.215.2.2:8080 timed out after 300ms; dropped in netns "`
	if !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), `-r" on dr_rb (tc egress) by program drop_port (TC_EGRESS)`) {
		t.Errorf("error %q does not say where the packets died", err)
	}
}

func TestDropsStandIn(t *testing.T) {
	out, err := runRecorded(t, noForwardLab+`
expect_pass("10.215.2.2", proto = "icmp", src = a)
print(drops(), drops(since = 3))
`)
	if err != nil {
		t.Fatal(err)
	}
	if out != "[] []\n" {
		t.Errorf("a lab of stand-ins saw drops: %q", out)
	}
	if _, err := runRecorded(t, `drops(since = -1)`); err == nil || !strings.Contains(err.Error(), "since=-1") {
		t.Errorf("since=-1: %v", err)
	}
}

// TestLossExplainedByRoutes checks the verdicts of flows lost with no
// packet dropped, b having no routes but to its own subnet: a lossy ping
// and a check from a (b never builds the reply), and a check from b
// (nothing is sent).
func TestLossExplainedByRoutes(t *testing.T) {
	lab := strings.Replace(noForwardLab, `route("default", via = "10.215.2.1", ns = b)`, "forwarding(ns = r)", 1)
	out, err := runScript(t, lab+`
print(ping("10.215.2.2", src = a, count = 1, timeout = "300ms"))
expect_drop("10.215.2.2", proto = "icmp", src = a, timeout = "300ms")
expect_drop("10.215.1.2", port = 80, src = b, timeout = "300ms")
`)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := `ping(10.215.2.2 from netns("$P-a"): 1 sent, 0 received, 100% loss; netns "$P-b" has no route back to 10.215.1.2)
ok: icmp netns("$P-a") -> 10.215.2.2 dropped: no reply, as netns "$P-b" has no route back to 10.215.1.2
ok: tcp netns("$P-b") -> 10.215.1.2:80 dropped: never sent, as netns "$P-b" has no route to 10.215.1.2
`
	if out != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out, wantOut)
	}
}
