// Command nkscript runs network labs written in Starlark: it creates
// namespaces, veth and netkit pairs, addresses and routes, loads and
// attaches BPF programs, checks what traffic passes and what is dropped,
// and removes everything it created when the script ends, however it ends.
//
// Usage:
//
//	nkscript [flags] FILE.star [ARGS...]   run a lab script
//	nkscript [flags]                       start a REPL
//	nkscript cleanup                       remove what killed runs left behind
//	nkscript kernels [--fetch]             list (or fetch) microVM kernels
//	nkscript test [PATH...]                run scripts as golden-output tests
//	nkscript version                       print the version
package main

import "os"

func main() { os.Exit(Main()) }
