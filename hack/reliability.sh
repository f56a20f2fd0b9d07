#!/usr/bin/env bash
# reliability.sh: the long reliability run behind `make reliability`.
# Writes docs/RELIABILITY.md from what this run measured: the fault sweep
# (per fault point, how often it was made to fail and to panic, and which
# labs reach it) on the host and, for the netkit variant of the labs, in
# the microVM; random signals by the phase they interrupted; fuzz
# executions; leaks.
#
#   FUZZTIME=20s   how long each fuzz target runs
#   SEED=N         seed of the random signal timings (default: time)
#   MODE=short     the short sweep `make test` runs (a sample), to check
#                  this script quickly; the report says so
#   VM=0           skip the microVM sweep; the report says tutorial.star
#                  and the netkit variants were not swept
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-15s}
SEED=${SEED:-$(date +%s)}
MODE=${MODE:-long}
VM=${VM:-1}
GO=${GO:-go}
out=docs/RELIABILITY.md
tmp=$(mktemp -d)
# The guest writes its report here: a directory the microVM sees (not /tmp).
vmdir=$(mktemp -d /var/tmp/nkscript-reliability-XXXXXX)
trap 'rm -rf "$tmp" "$vmdir"' EXIT
status=0
started=$(date +%s)
long=
[ "$MODE" = long ] && long=long

./hack/leakcheck.sh snapshot "$tmp/before"

# json KEY FILE: the number after "KEY": in the report (0 if absent).
json() { local v; v=$(grep -oE "\"$1\": [0-9]+" "$2" 2>/dev/null | head -1 | grep -oE '[0-9]+$'); echo "${v:-0}"; }
# points FILE: how many fault points exist, and how many a swept lab reaches.
points() {
  local all reached
  all=$(sed -n '/"all_points"/,/]/p' "$1" 2>/dev/null | grep -c '"[A-Za-z]*",\?$')
  reached=$(sed -n '/"reached": {/,/^  }/p' "$1" 2>/dev/null | grep -cE '^    "[A-Za-z]+": \[')
  echo "$reached of $all"
}
# injected FILE MODE: faulted runs in MODE (fail or panic); undo ones with "undo".
injected() {
  sed -n '/"points": {/,/^  }/p' "$1" 2>/dev/null | awk -v mode="\"$2\":" -v undo="${3:-}" '
    /^    "[A-Za-z]+": \{/ { p = $1 }
    $1 == mode { n = $2 + 0; if ((undo == "undo") == (p == "\"Undo\":")) s += n }
    END { print s + 0 }'
}
# signals FILE OUTCOME: signals with that outcome, over all phases.
signals() { grep -oE "\"$2\": [0-9]+" "$1" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'; }

# Fault sweep over every lab that runs on this kernel and the sweep-only
# labs of testdata/sweep/, random signals, concurrent runs and pre-existing
# names.
echo "== fault sweep and signals on the host ($MODE, seed $SEED)"
NKSCRIPT_RELIABILITY=$long NKSCRIPT_RELIABILITY_SEED=$SEED NKSCRIPT_RELIABILITY_REPORT="$tmp/host.json" \
  $GO test -count=1 -v -timeout 60m \
  -run 'TestFaultSweep|TestFaultPointsReached|TestRandomSignals|TestConcurrentRuns|TestPreexistingNamesUntouched|TestSignalsCleanUp|TestSIGKILLThenCleanup|TestReliabilityReport' \
  ./cmd/nkscript >"$tmp/sweep.log" 2>&1 || {
  status=1
  cp "$tmp/sweep.log" /var/tmp/nkscript-reliability-host.log
  echo "reliability tests FAILED; the whole log is /var/tmp/nkscript-reliability-host.log"
  grep -E '^\s+\S+_test.go:[0-9]+:' "$tmp/sweep.log" | head -30
}
grep -E '^(--- |ok|FAIL)|kernel-changing operations|seed ' "$tmp/sweep.log"

# The netkit variant of every lab (tutorial.star only exists as one) is
# swept in the microVM, whose kernel has netkit.
vmresult="not run (VM=0): tutorial.star and the netkit variants of the labs were not swept"
if [ "$VM" = 1 ]; then
  echo "== fault sweep of the netkit labs in the microVM ($MODE)"
  if NKSCRIPT_REQUIRE_VM=1 NKSCRIPT_RELIABILITY=$long NKSCRIPT_RELIABILITY_REPORT="$vmdir/guest.json" \
    NKSCRIPT_VMTEST_RUN='TestFaultSweep|TestFaultPointsReached|TestReliabilityReport' NKSCRIPT_VMTEST_TIMEOUT=150m \
    $GO test -count=1 -v -timeout 160m -run 'TestNetkitSuitesInGuest$' ./vmtest >"$tmp/vm.log" 2>&1 && [ -s "$vmdir/guest.json" ]; then
    vmresult=pass
  else
    vmresult=FAIL; status=1
    cp "$tmp/vm.log" /var/tmp/nkscript-reliability-vm.log
    echo "microVM sweep FAILED; the whole log is /var/tmp/nkscript-reliability-vm.log"; tail -40 "$tmp/vm.log"
  fi
  grep -E '^\s*(--- |ok|FAIL)' "$tmp/vm.log" | grep -E 'TestFaultSweep|TestNetkitSuitesInGuest|^ok|FAIL' | head -40
else
  status=1
  echo "microVM sweep skipped (VM=0): the report says so"
fi

# The tests that download a kernel: a pinned version the archive lacks
# falls back to the newest of its series, and a user without root fetches
# into their own cache.
echo "== kernel fetching (downloads about 150 MB)"
if NKSCRIPT_TEST_KERNEL_FETCH=1 $GO test -count=1 -v -timeout 30m -run 'TestKernelFallbackFetch|TestNonRootFetch' ./vm ./cmd/nkscript >"$tmp/fetch.log" 2>&1; then
  fetchresult=pass
else
  fetchresult=FAIL; status=1
  echo "kernel fetching FAILED:"; tail -30 "$tmp/fetch.log"
fi
grep -E '^(--- |ok|FAIL)' "$tmp/fetch.log"

# Every fuzz target for FUZZTIME.
echo "== fuzzing, $FUZZTIME per target"
fuzzrows=""
fuzztotal=0
for pkg in ./datapath ./internal/btfcodec ./builtins ./vm; do
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9]*' $pkg/*_test.go | sed 's/func //' | sort); do
    log="$tmp/fuzz-$target.log"
    if $GO test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" >"$log" 2>&1; then
      result=pass
    else
      result=FAIL; status=1
      echo "--- $target failed:"; tail -30 "$log"
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    execs=${execs:-0}
    fuzztotal=$((fuzztotal + execs))
    printf '  %-28s %-6s %s execs\n' "$target" "$result" "$execs"
    fuzzrows+="| \`$pkg\` | \`$target\` | $execs | $result |"$'\n'
  done
done

leaks=0
if ! ./hack/leakcheck.sh compare "$tmp/before" >"$tmp/leaks.txt"; then
  leaks=$(grep -cE '^[<>]' "$tmp/leaks.txt")
  status=1
fi
cat "$tmp/leaks.txt"
elapsed=$(( $(date +%s) - started ))

host=$tmp/host.json guest=$vmdir/guest.json
version="the long version: each operation and each undo step made to fail and, in another run, to panic"
[ "$MODE" = long ] || version="the SHORT version (MODE=$MODE), a sample: not what \`make reliability\` reports"
{
  echo "# Reliability report"
  echo
  echo "Generated by \`make reliability\` (hack/reliability.sh) on $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, in ${elapsed} s. Do not edit: rerun it."
  echo "Sweep: $version."
  echo
  echo "| measure | host | microVM (netkit) |"
  echo "|---|---|---|"
  echo "| faulted runs: operations made to fail | $(injected "$host" fail) | $(injected "$guest" fail) |"
  echo "| faulted runs: operations made to panic | $(injected "$host" panic) | $(injected "$guest" panic) |"
  echo "| faulted runs: undo steps made to fail | $(injected "$host" fail undo) | $(injected "$guest" fail undo) |"
  echo "| faulted runs: undo steps made to panic | $(injected "$host" panic undo) | $(injected "$guest" panic undo) |"
  echo "| fault points reached by a swept lab | $(points "$host") | $(points "$guest") |"
  echo "| microVM sweep | | $vmresult |"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| kernel fetching: a vanished pin falls back within its series; a user without root fetches into their cache | $fetchresult |"
  echo "| signals that interrupted a run (exit 1, \"interrupted\"), seed $(json seed "$host") | $(signals "$host" interrupted) |"
  echo "| SIGKILLs that killed a run (then \`nkscript cleanup\`) | $(signals "$host" killed) |"
  echo "| signals delivered after which the run still ended normally (exit 0) | $(signals "$host" "ended normally") |"
  echo "| signals not sent: the run had already exited | $(signals "$host" "after exit") |"
  echo "| fuzz executions (${FUZZTIME} per target) | $fuzztotal |"
  echo "| leaks found (machine state after ≠ before; must be 0) | $leaks |"
  echo "| result | $([ $status = 0 ] && echo pass || echo FAIL) |"
  echo
  echo "## Fault sweep on the host"
  echo
  echo "Every lab of scripts/ that runs on this kernel and the sweep-only labs of testdata/sweep/ (bridge(), link.set(),"
  echo "the xdp hook, trace()) ran once per faulted operation (NKSCRIPT_TEST_FAULT=k or panic:k) and undo step (undo:k,"
  echo "undo-panic:k). A faulted operation had to exit 1 naming the script position and the operation, and leave the"
  echo "machine exactly as before; a faulted undo step had to exit 1 with \"cleanup failed\", leave the machine different"
  echo "only in what its journal lists, and \`nkscript cleanup\` of that journal had to restore it exactly. The first"
  echo "table counts, per fault point, the runs whose output named that point; \"reached by\" lists the labs whose clean"
  echo "run passed it (a point no lab reaches fails TestFaultPointsReached). The last table counts random signals by"
  echo "the phase the run had reached when the signal was sent, and how the run ended."
  echo
  cat "$host.md" 2>/dev/null || echo "(no report: the host sweep did not finish)"
  echo
  echo "## Fault sweep in the microVM (netkit)"
  echo
  echo "The same sweep inside the microVM, whose kernel has netkit: the labs take their netkit branch, and"
  echo "tutorial.star, which needs netkit, is swept only here. No signals are sent in the guest."
  echo
  if [ -s "$guest.md" ]; then sed '/^| phase when sent/,$d' "$guest.md"; else echo "Not swept: $vmresult."; fi
  echo
  echo "## Fuzzing"
  echo
  echo "| package | target | executions | result |"
  echo "|---|---|---|---|"
  printf '%s' "$fuzzrows"
  echo
  echo "Crashes found earlier are kept as regression inputs under each package's testdata/fuzz/."
} >"$out"
echo "wrote $out (status $status)"
exit $status
