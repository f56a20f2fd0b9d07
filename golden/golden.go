// Package golden runs lab scripts as golden-output tests, the engine of
// `nkscript test`: Find and Select pick the scripts, Run runs each test
// on a fresh lab (session.Run) and compares what it printed with its
// NAME.golden file (File), or rewrites that file with Config.Update.
package golden

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/caps"
	"github.com/nkscript/nkscript/vm"
)

// Exit codes of Run.
const (
	exitOK   = 0
	exitFail = 1
)

// Config says how Run runs a batch of tests.
type Config struct {
	// Update rewrites the golden files with the output of the runs that
	// succeeded.
	Update bool
	// NoSkip makes a batch in which tests were skipped fail.
	NoSkip bool
	// GoldenOut hands golden file updates to Stdout, marked, instead of
	// writing them (a microVM guest cannot write the host's files).
	GoldenOut bool
	// VM is where to run: "auto", "always" or "never".
	VM string
	// Kernel, if set, is the kernel to boot: the batch runs in a microVM.
	Kernel string
	// Run selects the tests by name; nil: all.
	Run *regexp.Regexp
	// Paths are the paths the scripts were found under.
	Paths []string
	// Timeout, if not 0, stops each test run after this long.
	Timeout time.Duration
	// JournalDir is where the runs record what they create.
	JournalDir string
	// Stdout receives the summary; Stderr the verdicts and details.
	Stdout, Stderr io.Writer
	// RunInVM runs `nkscript ARGS` in a microVM, its standard output
	// going to stdout, and returns its exit code.
	RunInVM func(ctx context.Context, args []string, stdout io.Writer) int
}

// goldenMarker prefixes the lines on which a guest run with GoldenOut
// hands golden file updates to the host.
const goldenMarker = "nkscript-golden "

// Run runs the tests of files, on this host or in one microVM as
// cfg.VM decides, prints the verdicts and the summary, and returns the
// exit code: 0 if nothing failed (and, with cfg.NoSkip, nothing was
// skipped), else 1. ctx ending (a signal) stops the batch.
func Run(ctx context.Context, cfg Config, files []*Script) int {
	tr := &tester{cfg: cfg}
	if len(files) == 0 {
		fmt.Fprintf(cfg.Stderr, "nkscript test: no tests to run in %s\n", strings.Join(cfg.Paths, " "))
		return tr.summary()
	}
	if useVM, why := tr.decideVM(files); useVM {
		if why != "" {
			fmt.Fprintf(cfg.Stderr, "nkscript test: %s; running the tests in a microVM\n", why)
		}
		return tr.runInVM(ctx, files)
	}
	if err := caps.LabError(vm.HostCanRunVM); err != nil {
		fmt.Fprintf(cfg.Stderr, "nkscript test: %v\n", err)
		return 1
	}
	return tr.runAll(ctx, files)
}

// tester runs a batch of tests and counts the verdicts.
type tester struct {
	cfg                     Config
	passed, failed, skipped int
}

// decideVM says whether the batch runs in a microVM and, for --vm=auto,
// why. With --vm=auto on a host without netkit that cannot boot a
// microVM, it marks the scripts that need netkit as skipped.
func (tr *tester) decideVM(files []*Script) (bool, string) {
	switch tr.cfg.VM {
	case "never":
		return false, ""
	case "always":
		return true, ""
	}
	if tr.cfg.Kernel != "" {
		return true, ""
	}
	if why := caps.LabReason(); why != "" && vm.HostCanRunVM() == nil {
		return true, why
	}
	var users []string
	for _, tf := range files {
		if tf.Netkit {
			users = append(users, tf.Path)
		}
	}
	if len(users) == 0 || datapath.HaveNetkit() == nil {
		return false, ""
	}
	if err := vm.HostCanRunVM(); err != nil {
		for _, tf := range files {
			if tf.Netkit {
				tf.Skip = fmt.Sprintf("needs netkit, which the host kernel %s lacks, and no microVM can run here: %v", datapath.KernelRelease(), err)
			}
		}
		return false, ""
	}
	who := users[0] + " uses"
	if len(users) > 1 {
		who = fmt.Sprintf("%s and %d more use", users[0], len(users)-1)
	}
	return true, fmt.Sprintf("the host kernel %s has no netkit (CONFIG_NETKIT) and %s netkit_pair", datapath.KernelRelease(), who)
}

// runInVM runs the batch in one microVM as `nkscript test --vm=never` with
// the same arguments. The guest sees the host's files read-only, so with
// --update it hands the new golden files back on its standard output.
func (tr *tester) runInVM(ctx context.Context, files []*Script) int {
	guest := []string{"test", "--vm=never"}
	if tr.cfg.Update {
		guest = append(guest, "--update", "--golden-out")
	}
	if tr.cfg.NoSkip {
		guest = append(guest, "--no-skip")
	}
	if tr.cfg.JournalDir != datapath.DefaultJournalDir {
		guest = append(guest, "--journal-dir="+tr.cfg.JournalDir)
	}
	if tr.cfg.Run != nil {
		guest = append(guest, "--run="+tr.cfg.Run.String())
	}
	guest = append(guest, "--")
	guest = append(guest, tr.cfg.Paths...)

	var out bytes.Buffer
	code := tr.cfg.RunInVM(ctx, guest, &out)
	goldens := map[string]bool{}
	for _, tf := range files {
		goldens[tf.Golden] = true
		if tf.VethGolden != "" {
			goldens[tf.VethGolden] = true
		}
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		line := sc.Text()
		upd, ok := strings.CutPrefix(line, goldenMarker)
		if !ok {
			fmt.Fprintln(tr.cfg.Stdout, line)
			continue
		}
		var g struct{ Path, Content string }
		if err := json.Unmarshal([]byte(upd), &g); err != nil || !goldens[g.Path] {
			fmt.Fprintf(tr.cfg.Stderr, "nkscript test: unexpected golden file update from the microVM: %.80s\n", upd)
			code = exitFail
			continue
		}
		if !tr.writeGolden(g.Path, g.Content) {
			code = exitFail
		}
	}
	return code
}
