// Package compile builds BPF C sources into ELF objects with clang and
// keeps the objects in a cache, so that a script naming "filter.bpf.c"
// loads it with no manual build step and, the second time, without
// running clang.
//
// Object compiles with the flags a libbpf program is usually built with
// (-g -O2 -target bpf) plus the include paths a user would otherwise have
// to find: libbpf's headers and the multiarch UAPI directory (for
// <asm/types.h>), the source's directory and Options.Include, and, for
// sources that include "vmlinux.h", a directory holding one generated
// with bpftool from the running kernel's BTF (in a microVM, the guest's
// kernel: nkscript runs there). The cache directory falls back to one
// under the temporary directory where the default cannot be written, as
// in the microVM's guest, which sees the host's files read-only.
//
// The cache, under the bpf/ directory of nkscript's cache directory, is keyed in two
// steps. The first key hashes the source, its path, the flags and clang's
// version; under it a file lists the headers the last compile read (from
// clang's -MD output). The object's own key adds the contents of those
// headers, so that a changed header misses and a second run with nothing
// changed finds the object without calling clang. A generated vmlinux.h
// lives in a directory named by the hash of the BTF it came from: a
// changed kernel changes the header's path, and so the key.
//
// Package compile does not depend on Starlark or on the kernel's BPF
// interfaces: it only runs clang and bpftool and reads files.
package compile
