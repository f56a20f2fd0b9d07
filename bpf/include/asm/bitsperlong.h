/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Debian installs the uapi <asm/...> headers only under the host's multiarch
 * directory, which clang does not search for -target bpf. This shim maps
 * <asm/bitsperlong.h> to its architecture-independent equivalent so the BPF programs
 * build the same way on every host architecture.
 */
#pragma once
/* BPF is a 64-bit target whatever the host is. */
#define __BITS_PER_LONG 64
#include <asm-generic/bitsperlong.h>
