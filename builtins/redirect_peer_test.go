package builtins

import "testing"

// TestProgRunRedirectPeer writes redirect_peer's routes from a script, as
// fast_path.star does, and runs it: prog.run reports REDIRECT for a
// destination in its maps and NEXT for one that is not, in both families.
func TestProgRunRedirectPeer(t *testing.T) {
	out, err := runScript(t, `
rp = program("redirect_peer")
rp.maps["routes_v4"]["10.0.2.0/24"] = 7
rp.maps["routes_v6"]["fd00:2::/64"] = 7
print(rp.maps["routes_v4"].items(), rp.maps["routes_v6"].items())
print(rp.run(icmp("10.0.1.2", "10.0.2.2")).verdict, rp.run(icmp("10.0.1.2", "10.0.3.2")).verdict)
print(rp.run(icmp("fd00:1::2", "fd00:2::2")).verdict, rp.run(tcp("fd00:1::2", "fd00:3::2")).verdict)
print(stats(rp))
rp.maps["routes_v4"].pop("10.0.2.0/24")
print(rp.run(icmp("10.0.1.2", "10.0.2.2")).verdict)
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `[("10.0.2.0/24", 7)] [("fd00:2::/64", 7)]
REDIRECT NEXT
REDIRECT NEXT
stats(dropped = 0, passed = 2, redirected = 2)
NEXT
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}
