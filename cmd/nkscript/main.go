// Command nkscript runs network labs written in Starlark: it creates
// namespaces, veth and netkit pairs, addresses and routes, loads and
// attaches BPF programs, checks what traffic passes and what is dropped,
// and removes everything it created when the script ends, however it ends.
//
// Usage:
//
//	nkscript [flags] FILE.star [ARGS...]   run a lab script (--dry-run: print it as shell commands)
//	nkscript [flags]                       start a REPL (also: nkscript repl)
//	nkscript test [PATH...]                run scripts as golden-output tests
//	nkscript graph [--format F] FILE.star  draw the lab a script builds
//	nkscript cleanup [--journal-dir DIR]   remove what killed runs left behind
//	nkscript kernels [--fetch]             list (or fetch) microVM kernels
//	nkscript doc [NAME]                    print the builtin reference, or one entry
//	nkscript completion bash|zsh|fish      print a shell completion script
//	nkscript version                       print the version
//	nkscript help                          print the usage
//
// SIGINT and SIGTERM are caught first thing (package session): from then
// on they stop the run, which cleans up and exits 1, and never kill the
// process.
package main

import "os"

func main() { os.Exit(Main()) }
