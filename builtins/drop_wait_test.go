package builtins

import (
	"strings"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testutil"
)

// dropPortLab is noForwardLab with forwarding on in r and drop_port
// dropping port 8080 on r's way out to b.
var dropPortLab = strings.Replace(noForwardLab, `route("default", via = "10.215.2.1", ns = b)`, `route("default", via = "10.215.2.1", ns = b)
forwarding(ns = r)
attach(program("drop_port", port = 8080), rb.primary, "egress")
`, 1)

// TestExpectDropEndsOnMonitoredDrop checks that an expect_drop without
// by= stops waiting when the drop monitor reports the flow's packets
// dropped by a program (its reason says so, where a wait to the end says
// the connect timed out), and that with the monitor off it waits its
// timeout out and gives the same verdict.
func TestExpectDropEndsOnMonitoredDrop(t *testing.T) {
	const check = `expect_drop("10.215.2.2", port = 8080, src = a, timeout = "5s")` + "\n"
	for _, tc := range []struct {
		name       string
		monitorOff bool
		verdict    string
		reason     string
	}{
		{"monitor", false, `ok: tcp netns("$P-a") -> 10.215.2.2:8080 dropped in netns "$P-r" on dr_rb (tc egress) by program drop_port (TC_EGRESS)`, monitorCut},
		{"monitor off", true, `ok: tcp netns("$P-a") -> 10.215.2.2:8080 dropped`, "connect to 10.215.2.2:8080 timed out after 5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: t.TempDir(), Script: t.Name(),
				Host: testutil.Netns(t), NoDropMonitor: tc.monitorOff})
			if err != nil {
				t.Fatal(err)
			}
			exps, out, err := runReportOn(t, lab, dropPortLab+check)
			if err != nil {
				t.Fatal(err)
			}
			if len(exps) != 1 {
				t.Fatalf("recorded %d expectations, want 1: %+v", len(exps), exps)
			}
			e := exps[0]
			if !e.OK || e.Result != "drop" || e.Reason != tc.reason {
				t.Errorf("expectation: ok %v, result %q, reason %q; want ok, drop, %q", e.OK, e.Result, e.Reason, tc.reason)
			}
			if out != tc.verdict+"\n" {
				t.Errorf("verdict:\n%s\nwant:\n%s", out, tc.verdict)
			}
		})
	}
}
