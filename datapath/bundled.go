package datapath

import "github.com/nkscript/nkscript/bpf"

// BundledPrograms lists the programs shipped with nkscript, sorted.
func BundledPrograms() []string { return bpf.Names() }
