#!/usr/bin/env bash
# leakcheck.sh snapshot FILE [JOURNAL_DIR...] | compare FILE
# Records what a test run could leak or change on the machine, read from
# the kernel by internal/machine/cmd/machinestate: every network namespace
# (named, and by inode the anonymous ones processes and mounts hold), the
# links with their state, MTU and addresses, routes, rules, qdiscs, tc
# filters and tcx/XDP programs in the host and every named namespace, the
# host's network sysctls, BPF programs, maps and links by ID, bpffs pins,
# tracefs mounts and instances, the journals in JOURNAL_DIR... (default
# /run/nkscript; compare reuses the snapshot's) and qemu processes; and
# compares a later state with the snapshot. Objects are compared as they
# are: something a daemon creates meanwhile counts, so run it on a quiet
# machine.
#
#   LEAKCHECK_TRIES=50   compare attempts, 0.1 s apart, before a difference
#                        counts (namespace teardown is asynchronous)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && "${GO:-go}" build -o "$tmp/machinestate" ./internal/machine/cmd/machinestate)
state=$tmp/machinestate

case "${1:-}" in
snapshot)
  [ $# -ge 2 ] || { echo "usage: $0 snapshot FILE [JOURNAL_DIR...]" >&2; exit 2; }
  "$state" snapshot "$2" "${@:3}"
  ;;
compare)
  [ $# -eq 2 ] || { echo "usage: $0 compare FILE" >&2; exit 2; }
  # Namespace teardown finishes asynchronously in the kernel; give it a
  # moment before calling anything a leak.
  for _ in $(seq "${LEAKCHECK_TRIES:-50}"); do
    if "$state" compare "$2" >"$tmp/diff"; then echo "leak check: nothing left behind"; exit 0; fi
    [ -s "$tmp/diff" ] || exit 2 # machinestate failed; it said why
    sleep 0.1
  done
  # In diff's notation, which hack/reliability.sh counts.
  echo "leak check FAILED: the tests left these behind or changed them (> appeared, < went):"
  sed 's/^+ /> /; s/^- /< /' "$tmp/diff"
  exit 1
  ;;
*) echo "usage: $0 snapshot FILE [JOURNAL_DIR...] | compare FILE" >&2; exit 2 ;;
esac
