/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Debian installs the uapi <asm/...> headers only under the host's multiarch
 * directory, which clang does not search for -target bpf. This shim maps
 * <asm/byteorder.h> to its architecture-independent equivalent so the BPF programs
 * build the same way on every host architecture.
 */
#pragma once
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <linux/byteorder/little_endian.h>
#else
#include <linux/byteorder/big_endian.h>
#endif
