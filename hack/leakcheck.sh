#!/usr/bin/env bash
# leakcheck.sh snapshot FILE | compare FILE
# Records what a test run could leak on the host — network namespaces,
# links in the host namespace, BPF links, bpffs pins, nkscript journals and
# qemu processes — and compares a later state with the snapshot.
set -euo pipefail

state() {
  echo "# netns"; ip netns list 2>/dev/null | awk '{print $1}' | sort
  echo "# links"; ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
  echo "# bpf links"
  if command -v bpftool >/dev/null; then
    bpftool -j link show 2>/dev/null | tr '{' '\n' | grep -o '"id":[0-9]*' | sort || true
  fi
  echo "# bpffs"; find /sys/fs/bpf -mindepth 1 2>/dev/null | sort
  echo "# journals"; ls /run/nkscript 2>/dev/null | sort || true
  echo "# qemu"; pgrep -x qemu-system-x86_64 2>/dev/null | sort || true
}

case "${1:-}" in
snapshot) state >"$2" ;;
compare)
  # Namespace teardown finishes asynchronously in the kernel; give it a
  # moment before calling anything a leak.
  for _ in $(seq 50); do
    if diff -q "$2" <(state) >/dev/null; then echo "leak check: nothing left behind"; exit 0; fi
    sleep 0.1
  done
  echo "leak check FAILED: the tests left these behind (> added, < removed):"
  diff "$2" <(state) || true
  exit 1
  ;;
*) echo "usage: $0 snapshot|compare FILE" >&2; exit 2 ;;
esac
