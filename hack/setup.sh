#!/usr/bin/env bash
# setup.sh installs, on Debian bookworm as root, what nkscript's tests and
# microVM need: qemu to boot the netkit kernel, iproute2 + bpftool from
# bookworm-backports (both know netkit) for cross-checking state in tests
# and for vmlinux.h, and clang-19, llvm-19 and libbpf's headers, with which
# program("x.bpf.c") compiles BPF C.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

src=/etc/apt/sources.list.d/backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # Same mirror as the bookworm entry.
  cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  updated=
fi

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v unshare >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
# The microVM kernel is fetched with apt-get download and unpacked with
# dpkg-deb; its modules are xz or zstd compressed.
# Graphviz renders `nkscript graph --format=svg`.
# ping is in --dry-run's output, the shell baseline of `make bench`;
# GNU time gives make bench each run's peak memory.
# tcpdump reads back the pcapng files capture(pcap=) writes, in tests.
for t in xz:xz-utils zstd:zstd dpkg-deb:dpkg dot:graphviz ping:iputils-ping tcpdump:tcpdump; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ -x /usr/bin/time ] || need+=(time)
command -v clang-19 >/dev/null || need+=(clang-19)
command -v llvm-objdump-19 >/dev/null || need+=(llvm-19)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
bp=()
command -v bpftool >/dev/null || bp+=(bpftool)
ip -V 2>/dev/null | grep -qE 'iproute2-6\.(1[5-9]|[2-9][0-9])' || bp+=(iproute2)

if [ ${#need[@]} -gt 0 ] || [ ${#bp[@]} -gt 0 ] || [ -n "${updated+x}" ]; then
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ${#bp[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bp[@]}"
fi
echo "setup: qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), $(ip -V), $(bpftool version | head -1), $(clang-19 --version | head -1)"
