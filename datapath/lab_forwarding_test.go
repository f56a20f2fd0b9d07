package datapath

import (
	"os"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// hostForwarding turns on IPv4 forwarding in the initial namespace, as
// Docker and Kubernetes do, for the test: only where nothing else makes
// namespaces meanwhile (a microVM), or where it is on already.
func hostForwarding(t *testing.T) {
	t.Helper()
	const key = "/proc/sys/net/ipv4/ip_forward"
	old, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if string(old) == "1\n" {
		return
	}
	if !vm.InGuest() {
		testenv.SkipBecause(t, testenv.MachineWide, "net.ipv4.ip_forward is 0 here")
	}
	if err := os.WriteFile(key, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(key, old, 0o644) })
}

// A lab's namespaces forward only after forwarding(), on a machine that
// forwards too: new namespaces inherit its IPv4 forwarding.
func TestLabNamespacesDoNotInheritForwarding(t *testing.T) {
	hostForwarding(t)
	lab, _ := testLab(t)
	for i := range 3 {
		ns, err := lab.Netns(uniqueName("fw"))
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.default.forwarding"} {
			if v, err := ReadSysctl(ns, key); err != nil || v != "0" {
				t.Errorf("namespace %d: %s = %q (%v), want 0", i, key, v, err)
			}
		}
		if i == 1 {
			if err := lab.Forwarding(ns); err != nil {
				t.Fatal(err)
			}
			if v, _ := ReadSysctl(ns, "net.ipv4.ip_forward"); v != "1" {
				t.Errorf("after Forwarding: ip_forward = %q, want 1", v)
			}
		}
	}
}
