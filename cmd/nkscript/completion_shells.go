package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/nkscript/nkscript/builtins"
)

// bashHead completes a flag's value (_nkscript_value FLAG CUR) and a
// command's arguments (_nkscript_args KIND CUR).
const bashHead = `# bash completion for nkscript: source <(nkscript completion bash)
_nkscript_args() {
    local cur=$2
    case $1 in
    scripts)
        COMPREPLY=($(compgen -f -X '!*.star' -- "$cur") $(compgen -d -- "$cur")) ;;
    doc)
        COMPREPLY=($(compgen -W "$_nkscript_doc" -- "$cur")) ;;
    shells)
        COMPREPLY=($(compgen -W "%s" -- "$cur")) ;;
    *)
        COMPREPLY=() ;;
    esac
}
`

// bashMain finds the subcommand and completes the word under the cursor.
const bashMain = `_nkscript() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    [[ $cur == "=" ]] && cur=""
    [[ $prev == "=" && $COMP_CWORD -ge 2 ]] && prev=${COMP_WORDS[COMP_CWORD-2]}
    local sub="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ " $_nkscript_global_value " == *" $w "* ]]; then
            ((i++))
            [[ ${COMP_WORDS[i]} == "=" ]] && ((i++))
            continue
        fi
        [[ $w == -* || $w == "=" ]] && continue
        sub=$w
        break
    done
    if [[ " $_nkscript_value_flags " == *" $prev "* ]]; then
        _nkscript_value "$prev" "$cur"
        return
    fi
    case $sub in
%s    *)
        COMPREPLY=() ;;
    esac
}
complete -o filenames -F _nkscript nkscript
`

// writeBashCompletion writes the bash completion script.
func writeBashCompletion(w io.Writer, cmds []compCmd) {
	fmt.Fprintf(w, bashHead, strings.Join(shells, " "))
	fmt.Fprintf(w, "_nkscript_doc=%q\n", strings.Join(builtins.Names(), " "))
	fmt.Fprintf(w, "_nkscript_global_value=%q\n", strings.Join(valueFlags(cmds[0]), " "))
	fmt.Fprintf(w, "_nkscript_value_flags=%q\n", strings.Join(valueFlags(cmds...), " "))
	fmt.Fprintln(w, "_nkscript_value() {\n    local cur=$2 pre=\"\"\n    case $1 in")
	done := map[string]bool{}
	for _, c := range cmds {
		for _, f := range c.flags {
			if !f.value || done[f.long] {
				continue
			}
			done[f.long] = true
			pattern := "--" + f.long
			if f.short != "" {
				pattern += "|-" + f.short
			}
			fmt.Fprintf(w, "    %s)\n        %s ;;\n", pattern, bashValue(f))
		}
	}
	fmt.Fprintln(w, "    *)\n        COMPREPLY=() ;;\n    esac\n}")
	var cases strings.Builder
	for _, c := range cmds {
		pattern, args := c.name, c.args
		if pattern == "" {
			pattern = `""`
		}
		words := flagWords(c)
		if c.name == "" {
			// nkscript's first argument: a subcommand or a script.
			fmt.Fprintf(&cases, "    %s)\n        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); else _nkscript_args scripts \"$cur\"; COMPREPLY+=($(compgen -W %q -- \"$cur\")); fi ;;\n",
				pattern, strings.Join(words, " "), strings.Join(subNames(cmds), " "))
			continue
		}
		fmt.Fprintf(&cases, "    %s)\n        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); else _nkscript_args %s \"$cur\"; fi ;;\n",
			pattern, strings.Join(words, " "), argKind(args))
	}
	fmt.Fprintf(w, bashMain, cases.String())
}

func argKind(kind string) string {
	if kind == "" {
		return "none"
	}
	return kind
}

// bashValue is the bash that completes the value of f.
func bashValue(f compFlag) string {
	words := strings.Join(f.values, " ")
	switch f.kind {
	case "kernels":
		return fmt.Sprintf(`[[ $cur == *,* ]] && pre=${cur%%,*},; COMPREPLY=($(compgen -P "$pre" -W %q -- "${cur##*,}") $(compgen -f -P "$pre" -- "${cur##*,}"))`, words)
	case "dirs":
		return `COMPREPLY=($(compgen -d -- "$cur"))`
	case "files":
		return fmt.Sprintf(`COMPREPLY=($(compgen -W %q -- "$cur") $(compgen -f -- "$cur"))`, words)
	}
	if words != "" {
		return fmt.Sprintf(`COMPREPLY=($(compgen -W %q -- "$cur"))`, words)
	}
	return "COMPREPLY=()"
}

// writeZshCompletion writes the zsh completion script: _arguments specs
// for nkscript's flags and each subcommand's.
func writeZshCompletion(w io.Writer, cmds []compCmd) {
	fmt.Fprintln(w, "#compdef nkscript\n# zsh completion for nkscript: nkscript completion zsh > \"${fpath[1]}/_nkscript\"")
	fmt.Fprintln(w, "_nkscript() {\n  local curcontext=$curcontext state line\n  local -a subcmds\n  subcmds=(")
	for _, c := range cmds[1:] {
		fmt.Fprintf(w, "    '%s:%s'\n", c.name, c.desc)
	}
	fmt.Fprintln(w, "  )\n  _arguments -C \\")
	for _, spec := range zshSpecs(cmds[0]) {
		fmt.Fprintf(w, "    %s \\\n", spec)
	}
	fmt.Fprintln(w, "    '1: :->first' '*:: :->args'\n  case $state in\n  first)\n    _describe -t subcommands subcommand subcmds\n    _files -g '*.star' ;;\n  args)\n    case $line[1] in")
	for _, c := range cmds[1:] {
		fmt.Fprintf(w, "    %s)\n      _arguments \\\n", c.name)
		for _, spec := range zshSpecs(c) {
			fmt.Fprintf(w, "        %s \\\n", spec)
		}
		fmt.Fprintf(w, "        %s ;;\n", zshArgs(c.args))
	}
	fmt.Fprintln(w, "    *)\n      _files ;;\n    esac ;;\n  esac\n}\n_nkscript \"$@\"")
}

// zshSpecs are the _arguments specs of c's flags.
func zshSpecs(c compCmd) []string {
	var specs []string
	for _, f := range c.flags {
		action := ""
		if f.value {
			switch {
			case f.kind == "dirs":
				action = ":dir:_files -/"
			case f.kind == "files" && len(f.values) == 0:
				action = ":file:_files"
			case f.kind == "kernels":
				action = fmt.Sprintf(":kernels:_sequence compadd - %s", strings.Join(f.values, " "))
			case len(f.values) > 0:
				action = fmt.Sprintf(":value:(%s)", strings.Join(f.values, " "))
			default:
				action = ":value: "
			}
		}
		eq := ""
		if f.value {
			eq = "="
		}
		specs = append(specs, fmt.Sprintf("'--%s%s[%s]%s'", f.long, eq, f.desc, action))
		if f.short != "" {
			specs = append(specs, fmt.Sprintf("'-%s[%s]%s'", f.short, f.desc, action))
		}
	}
	return specs
}

// zshArgs is the _arguments spec of a command's arguments.
func zshArgs(kind string) string {
	switch kind {
	case "scripts":
		return `'*:path:_files -g "*.star"'`
	case "doc":
		return fmt.Sprintf("'1:builtin:(%s)'", strings.Join(builtins.Names(), " "))
	case "shells":
		return fmt.Sprintf("'1:shell:(%s)'", strings.Join(shells, " "))
	}
	return "'*: :'"
}

// writeFishCompletion writes the fish completion script.
func writeFishCompletion(w io.Writer, cmds []compCmd) {
	fmt.Fprintln(w, "# fish completion for nkscript: nkscript completion fish > ~/.config/fish/completions/nkscript.fish")
	for _, c := range cmds {
		cond := "__fish_use_subcommand"
		if c.name != "" {
			cond = "__fish_seen_subcommand_from " + c.name
			fmt.Fprintf(w, "complete -c nkscript -n __fish_use_subcommand -f -a %s -d '%s'\n", c.name, c.desc)
		}
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c nkscript -n '%s' -l %s", cond, f.long)
			if f.short != "" {
				line += " -s " + f.short
			}
			switch {
			case f.value && len(f.values) > 0 && f.kind == "":
				line += fmt.Sprintf(" -x -a '%s'", strings.Join(f.values, " "))
			case f.value && len(f.values) > 0:
				line += fmt.Sprintf(" -r -a '%s'", strings.Join(f.values, " "))
			case f.value:
				line += " -r"
			}
			fmt.Fprintf(w, "%s -d '%s'\n", line, f.desc)
		}
		switch c.args {
		case "doc":
			fmt.Fprintf(w, "complete -c nkscript -n '%s' -f -a '%s'\n", cond, strings.Join(builtins.Names(), " "))
		case "shells":
			fmt.Fprintf(w, "complete -c nkscript -n '%s' -f -a '%s'\n", cond, strings.Join(shells, " "))
		}
	}
}
