// Command machinestate writes and compares snapshots of what a run of
// nkscript can change or leave behind on the machine (see package
// machine); hack/leakcheck.sh runs it around the test suite.
//
//	machinestate snapshot FILE [JOURNAL_DIR...]
//	machinestate compare FILE
//	machinestate print [JOURNAL_DIR...]
//
// snapshot writes the state to FILE, remembering the journal directories
// (default /run/nkscript); compare takes the state again with the same
// directories and, if it differs, prints "+ line" for each object that
// appeared and "- line" for each that went, and exits 1. print writes the
// state to standard output.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nkscript/nkscript/internal/machine"
)

const journalHeader = "# journal "

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "machinestate:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) < 1 || (args[0] != "print" && len(args) < 2) {
		return 0, fmt.Errorf("usage: machinestate snapshot FILE [JOURNAL_DIR...] | compare FILE | print [JOURNAL_DIR...]")
	}
	switch args[0] {
	case "print":
		s, err := machine.Snapshot(options(args[1:]))
		if err != nil {
			return 0, err
		}
		fmt.Print(s)
		return 0, nil
	case "snapshot":
		dirs := args[2:]
		s, err := machine.Snapshot(options(dirs))
		if err != nil {
			return 0, err
		}
		var b strings.Builder
		for _, d := range options(dirs).Journals {
			b.WriteString(journalHeader + d + "\n")
		}
		b.WriteString(s.String())
		return 0, os.WriteFile(args[1], []byte(b.String()), 0o644)
	case "compare":
		text, err := os.ReadFile(args[1])
		if err != nil {
			return 0, err
		}
		var dirs []string
		for _, l := range strings.Split(string(text), "\n") {
			if d, ok := strings.CutPrefix(l, journalHeader); ok {
				dirs = append(dirs, d)
			}
		}
		now, err := machine.Snapshot(options(dirs))
		if err != nil {
			return 0, err
		}
		if d := machine.Leaks(machine.Diff(machine.Parse(string(text)), now)); d != "" {
			fmt.Println(d)
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("unknown command %q", args[0])
}

// options covers the whole machine, with the journal directories dirs
// (default: machine.DefaultJournalDir).
func options(dirs []string) machine.Options {
	if len(dirs) == 0 {
		dirs = []string{machine.DefaultJournalDir}
	}
	return machine.Options{Journals: dirs}
}
