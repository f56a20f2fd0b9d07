package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nkscript/nkscript/golden"
	"github.com/spf13/pflag"
)

const completionUsage = `Usage:
  nkscript completion bash|zsh|fish   print a shell completion script

bash:  source <(nkscript completion bash)     or install it as
       /usr/share/bash-completion/completions/nkscript (make install does)
zsh:   nkscript completion zsh > "${fpath[1]}/_nkscript"
fish:  nkscript completion fish > ~/.config/fish/completions/nkscript.fish
`

// cmdCompletion implements `nkscript completion SHELL`.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, completionUsage)
		return exitOK
	}
	if len(args) != 1 {
		fmt.Fprint(stderr, "nkscript completion: name one shell\n"+completionUsage)
		return exitUsage
	}
	cmds := completionCommands()
	switch args[0] {
	case "bash":
		writeBashCompletion(stdout, cmds)
	case "zsh":
		writeZshCompletion(stdout, cmds)
	case "fish":
		writeFishCompletion(stdout, cmds)
	default:
		fmt.Fprintf(stderr, "nkscript completion: %q: use bash, zsh or fish\n", args[0])
		return exitUsage
	}
	return exitOK
}

// compFlag is a flag as the completion scripts offer it.
type compFlag struct {
	long, short string
	// value says the flag takes a value; values are the words it can
	// be, kind how else to complete it: "files", "dirs", "kernels"
	// (a comma-separated list) or "".
	value  bool
	values []string
	kind   string
	desc   string
}

// compCmd is a subcommand: its flags and what its arguments are:
// "scripts" (*.star files and directories), "doc" (builtin names),
// "shells", or "" (nothing to complete).
type compCmd struct {
	name, desc string
	flags      []compFlag
	args       string
}

// completionCommands lists the subcommands; the first, with no name, is
// nkscript itself, whose arguments are a script to run.
func completionCommands() []compCmd {
	var o options
	var t golden.Config
	var tf testFlags
	return []compCmd{
		{"", "", pflagFlags(newFlags(&o, io.Discard)), "scripts"},
		{"test", "run scripts as golden-output tests", pflagFlags(newTestFlags(&o, &t, &tf, io.Discard)), "scripts"},
		{"new", "write a new lab", nil, ""},
		{"graph", "draw the lab a script builds", []compFlag{
			{long: "format", value: true, values: []string{"mermaid", "dot", "svg"}, desc: "mermaid, dot or svg"},
			{long: "output", short: "o", value: true, kind: "files", desc: "write to FILE instead of standard output"},
		}, "scripts"},
		{"cleanup", "remove what killed runs left behind", []compFlag{{long: "journal-dir", value: true, kind: "dirs", desc: "where the runs recorded what they created"}}, ""},
		{"kernels", "list or fetch the microVM kernels", []compFlag{{long: "fetch", desc: "download the pinned kernels"}}, ""},
		{"doc", "print the builtin reference", nil, "doc"},
		{"repl", "start a REPL", nil, ""},
		{"version", "print the version", nil, ""},
		{"help", "print the usage", nil, ""},
		{"completion", "print a shell completion script", nil, "shells"},
	}
}

// pflagFlags turns the visible flags of fs into compFlags, with the
// values the flags that take one can have.
func pflagFlags(fs *pflag.FlagSet) []compFlag {
	var flags []compFlag
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		c := compFlag{long: f.Name, short: f.Shorthand, value: f.Value.Type() != "bool", desc: firstClause(f.Usage)}
		switch f.Name {
		case "vm":
			c.values = []string{"auto", "always", "never"}
		case "kernel":
			c.values, c.kind = pinnedNames(), "files"
		case "kernels":
			c.values, c.kind = append([]string{golden.HostKernel, "all"}, pinnedNames()...), "kernels"
		case "journal-dir", "allow-path":
			c.kind = "dirs"
		case "clang", "junit":
			c.kind = "files"
		}
		flags = append(flags, c)
	})
	return flags
}

// firstClause is a flag's usage up to its first ":" or "(" , without the
// characters the shells' description syntaxes reserve.
func firstClause(usage string) string {
	if i := strings.IndexAny(usage, ":("); i > 0 {
		usage = usage[:i]
	}
	usage = strings.NewReplacer("`", "", "'", "", "\"", "", "[", "", "]", "", "$", "", "\\", "").Replace(usage)
	return strings.TrimSpace(usage)
}

// subNames are the names of the subcommands.
func subNames(cmds []compCmd) []string {
	var names []string
	for _, c := range cmds[1:] {
		names = append(names, c.name)
	}
	return names
}

// flagWords are the spellings of the flags of c: --long and -s.
func flagWords(c compCmd) []string {
	var words []string
	for _, f := range c.flags {
		words = append(words, "--"+f.long)
		if f.short != "" {
			words = append(words, "-"+f.short)
		}
	}
	return words
}

// valueFlags are the spellings of the flags of the commands that take a
// value.
func valueFlags(cmds ...compCmd) []string {
	var words []string
	for _, c := range cmds {
		for _, f := range c.flags {
			if f.value && !slices.Contains(words, "--"+f.long) {
				words = append(words, "--"+f.long)
				if f.short != "" {
					words = append(words, "-"+f.short)
				}
			}
		}
	}
	return words
}

// shells are the shells `nkscript completion` writes scripts for.
var shells = []string{"bash", "zsh", "fish"}
