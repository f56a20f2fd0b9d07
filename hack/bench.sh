#!/usr/bin/env bash
# bench.sh: `make bench`. Measures, on this machine, nkscript against the
# same lab as an iproute2 shell script (nkscript --dry-run's output) and as
# a hand-written serial Go program (bench/chaingo), startup, BPF programs
# and the Go microbenchmarks, and writes BENCHMARKS.md. Needs root.
#
# The sections below only measure: each records what it measured (or that
# it failed) in $R/results.tsv and text files beside it, and bench/report
# renders every figure, ratio and verdict of BENCHMARKS.md from them. A
# benchmark that fails is recorded and the others go on; the exit status is
# then 1, after BENCHMARKS.md is written.
#
# QUICK=1 runs fewer repetitions. BENCH_ONLY="compile bpf ..." runs only
# those sections and prints their part of the report instead of writing
# BENCHMARKS.md. BENCH_RESULTS=DIR keeps the results in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=BENCHMARKS.md
tmp=$(mktemp -d)
cleanup() {
  git worktree remove --force "$tmp/base" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
R=${BENCH_RESULTS:-$tmp/results}
mkdir -p "$R"
: >"$R/results.tsv"
CGO_ENABLED=0 $GO build -o "$tmp/nkscript" ./cmd/nkscript
$GO build -o "$tmp/chaingo" ./bench/chaingo
$GO build -o "$tmp/nsrelease" ./bench/nsrelease
$GO build -o "$tmp/pagecost" ./bench/pagecost
$GO build -o "$tmp/report" ./bench/report
$GO build -o "$tmp/benchstat-bin" golang.org/x/perf/cmd/benchstat
NK=$tmp/nkscript
NSR=$tmp/nsrelease
LAB=scripts/bench/chain.star

# The microbenchmarks' baseline: the last commit before the optimisations
# they measure (doQuick for sysctls, WaitReady looking before subscribing,
# the namespace pool making spares on demand).
BASE=4731b70

# ---- Recording (the record kinds are documented in bench/report) ----
# rec KIND NAME VALUE...: one record of results.tsv.
rec() { local IFS=$'\t'; printf '%s\n' "$*" >>"$R/results.tsv"; }
# fail SERIES MESSAGE...: SERIES failed; the message goes on one line.
fail() {
  local series=$1; shift
  rec fail "$series" "$(printf '%s' "$*" | tr '\n\t|' '   ' | tr -s ' ' | cut -c1-300)"
  echo "  $series failed: $*" | head -3 >&2
}
# tail_of FILE...: the last lines a failed command printed, for its message.
tail_of() { cat "$@" 2>/dev/null | grep -v '^nsrelease:' | tail -n 3 || true; }
# first_fail FILE...: the first line a failed command printed that names a
# failure ("FAIL NAME" of nkscript test, "--- FAIL: Test" of go test) and
# the two lines after it, which say why.
first_fail() { cat "$@" 2>/dev/null | grep -m 1 -A 2 -E '^(FAIL |--- FAIL)' || true; }
# why STATUS FILE...: "exit status N", the first failure the command
# printed and its last lines (fail() keeps 300 characters: the first
# failure goes first).
why() {
  local status=$1 f t; shift
  f=$(first_fail "$@"); t=$(tail_of "$@")
  echo "exit status $status${f:+: $f ...}${t:+: $t}"
}
field() { sed -n "s/.*$1=\(-\?[0-9]*\).*/\1/p" <<<"$2"; }

# run1 SERIES CMD...: one run under nsrelease, which times it and then
# waits until the kernel has finished releasing the namespaces it deleted,
# so that no run pays for the previous one's teardown. Records its wall
# time and release time, or its failure.
run1() {
  local series=$1 status=0 line; shift
  "$NSR" --timeout "${NSR_TIMEOUT:-30s}" -- "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  line=$(grep '^nsrelease: wall_us=' "$tmp/err" || true)
  if [ "$status" != 0 ] || [ -z "$(field release_us "$line")" ]; then
    fail "$series" "$(why "$status" "$tmp/out" "$tmp/err")"
    return 0
  fi
  rec run "$series" "$(field wall_us "$line")" "$(field release_us "$line")"
}

# gnu_value SERIES FORMAT CMD...: one figure of one run by GNU time (which
# forks from a small process; see bench/nsrelease), also waited for until
# its namespaces are released. %M is the peak RSS in KiB, %R the minor
# page faults.
gnu_value() {
  local series=$1 format=$2 status=0; shift 2
  "$NSR" -- /usr/bin/time -f "$format" -o "$tmp/gnu-time" "$@" >"$tmp/out" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    fail "$series" "$(why "$status" "$tmp/out")"
    return 0
  fi
  rec value "$series" "$(tail -1 "$tmp/gnu-time")"
}

# time_run SERIES CMD...: the wall time of one run, without nsrelease (for
# runs that make no namespaces).
now_us() { local t=$EPOCHREALTIME; echo $(( ${t/./} )); }
time_run() {
  local series=$1 s status=0; shift
  s=$(now_us)
  "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  if [ "$status" != 0 ]; then
    fail "$series" "$(why "$status" "$tmp/out" "$tmp/err")"
    return 0
  fi
  rec run "$series" $(( $(now_us) - s )) 0
}

reps_for() {
  local n=$1
  if [ -n "${QUICK:-}" ]; then echo 3; return; fi
  case $n in 1|10) echo 15 ;; 50|100) echo 9 ;; *) echo 5 ;; esac
}

section_meta() {
  rec meta date "$(date -u +%Y-%m-%d)"
  rec meta kernel "$(uname -r)"
  rec meta cpus "$(nproc)"
  rec meta mem_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
  rec meta nkscript_bytes "$(stat -c %s "$NK")"
}

# ---- Your own program: program("x.bpf.c") and prog.run ----
# A cached program("x.bpf.c") against loading the same object (whole
# runs, interleaved), a cold compile (an empty cache each run), and
# prog.run per call from a script against the kernel's own
# BPF_PROG_TEST_RUN time, per bundled program.
section_compile() {
  echo "== program(\"x.bpf.c\") and prog.run"
  local cc=$tmp/cc reps r
  mkdir -p "$cc"
  cp scripts/own_program/netkit_example.bpf.c "$cc/prog.bpf.c"
  echo 'program("prog.bpf.c")' >"$cc/c.star"
  echo 'program("prog.o")' >"$cc/o.star"
  if ! clang-19 -g -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c "$cc/prog.bpf.c" -o "$cc/prog.o" 2>"$tmp/err"; then
    fail compile "clang-19: $(tail_of "$tmp/err")"
    return 0
  fi
  NKSCRIPT_CACHE=$cc/cache "$NK" "$cc/c.star" >/dev/null 2>"$tmp/err" || fail compile/cached "filling the cache: $(tail_of "$tmp/err")"
  reps=$([ -n "${QUICK:-}" ] && echo 5 || echo 30)
  for r in $(seq "$reps"); do
    NKSCRIPT_CACHE=$cc/cache time_run compile/cached "$NK" "$cc/c.star"
    time_run compile/object "$NK" "$cc/o.star"
    rm -rf "$cc/cold"
    NKSCRIPT_CACHE=$cc/cold time_run compile/cold "$NK" "$cc/c.star"
  done

  # prog.run: a script running a program K times on one packet, against
  # the same script running it 0 times; and the kernel's own time per run
  # (ns_per_run of 100000 repetitions).
  cat >"$cc/run.star" <<'EOF'
p = program(argv[1])
pkt = udp("10.0.0.1", "10.0.0.2", sport = 4000, dport = 53) if argv[1].startswith("xdp") else tcp("10.0.0.1", "10.0.0.2", dport = 80)
for i in range(int(argv[2])):
    p.run(pkt)
print(p.run(pkt, repeat = 100000).ns_per_run)
EOF
  local k=20000 name status
  rec param progrun_calls "$k"
  for name in pass drop_port drop_flow policy_router lb mirror redirect_peer xdp_pass xdp_drop_port; do
    for r in $(seq $([ -n "${QUICK:-}" ] && echo 3 || echo 7)); do
      time_run "progrun/$name/zero" "$NK" --max-steps 100000000 "$cc/run.star" "$name" 0
      time_run "progrun/$name/many" "$NK" --max-steps 100000000 "$cc/run.star" "$name" "$k"
      status=0
      "$NK" "$cc/run.star" "$name" 0 >"$tmp/out" 2>"$tmp/err" || status=$?
      if [ "$status" = 0 ]; then rec value "progrun/$name/kern" "$(tail -1 "$tmp/out")"
      else fail "progrun/$name/kern" "$(why "$status" "$tmp/err")"; fi
    done
  done
}

# ---- A chain of N+1 namespaces: nkscript, the shell script, chaingo ----
# Series chain/N/nk, chain/N/sh, chain/N/go (runs) and chain/N/rss
# (nkscript's peak RSS, KiB). bench/report makes a row of every N it finds;
# a side deliberately not run at some N is recorded with
# `rec skip chain/N/IMPL "why"`.
section_chain() {
  echo "== chain labs"
  local n reps r
  for n in 1 10 50 100 1000; do
    reps=$(reps_for $n)
    echo "  N=$n, $reps runs of each"
    "$NK" --dry-run $LAB $n >"$tmp/chain-$n.sh" 2>"$tmp/err" || fail "chain/$n/sh" "nkscript --dry-run: $(tail_of "$tmp/err")"
    for r in $(seq "$reps"); do
      # Interleaved, so that drift in the machine hits all three alike.
      run1 "chain/$n/nk" "$NK" $LAB $n
      run1 "chain/$n/sh" bash "$tmp/chain-$n.sh"
      run1 "chain/$n/go" "$tmp/chaingo" $n
    done
    gnu_value "chain/$n/rss" %M "$NK" $LAB $n
  done
}

# ---- Chains of 3,000 and 10,000 namespaces ----
# nkscript and chaingo only: rows chain/N/{nk,go,rss} of the chain table,
# the shell side recorded as not run, chain/N/fds (the most descriptors
# nkscript had open), and bigprofile-N.txt (nkscript --profile of the last
# run at N, beside bigprofile-100.txt made here too). BIG_SIZES overrides
# the sizes.
section_big() {
  echo "== chains of 3,000 and 10,000 namespaces"
  local n reps r
  if "$NSR" --timeout 300s -- "$NK" --profile $LAB 100 >/dev/null 2>"$tmp/err"; then
    grep -v '^nsrelease:' "$tmp/err" >"$R/bigprofile-100.txt"
  else
    fail bigprofile "$(tail_of "$tmp/err")"
  fi
  for n in ${BIG_SIZES:-3000 10000}; do
    reps=$([ -n "${QUICK:-}" ] && echo 1 || { [ "$n" -ge 10000 ] && echo 2 || echo 3; })
    echo "  N=$n, $reps runs of each"
    rec skip "chain/$n/sh" "the shell script would take many minutes at this size"
    for r in $(seq "$reps"); do
      NSR_TIMEOUT=300s run1 "chain/$n/nk" "$NK" --profile $LAB "$n"
      grep -v '^nsrelease:' "$tmp/err" >"$R/bigprofile-$n.txt" || true
      NSR_TIMEOUT=300s run1 "chain/$n/go" "$tmp/chaingo" "$n"
    done
    rss_fds "chain/$n" "$NK" $LAB "$n"
  done
}

# rss_fds SERIES CMD...: records SERIES/rss, the peak RSS (KiB) of one run
# by GNU time, and SERIES/fds, the most descriptors CMD's process had
# open, sampled every 0.1 s from /proc/PID/fd.
rss_fds() {
  local series=$1 np tp="" pid="" max=0 c status=0; shift
  "$NSR" --timeout 300s -- /usr/bin/time -f %M -o "$tmp/gnu-time" "$@" >/dev/null 2>"$tmp/rss-err" &
  np=$!
  while kill -0 "$np" 2>/dev/null; do
    [ -n "$tp" ] || tp=$(pgrep -P "$np" || true)
    [ -z "$tp" ] || [ -n "$pid" ] || pid=$(pgrep -P "$tp" || true)
    if [ -n "$pid" ]; then
      c=$( (ls "/proc/$pid/fd" 2>/dev/null || true) | wc -l)
      [ "$c" -le "$max" ] || max=$c
    fi
    sleep 0.1
  done
  wait "$np" || status=$?
  if [ "$status" != 0 ]; then
    fail "$series/rss" "$(why "$status" "$tmp/rss-err")"
    fail "$series/fds" "$(why "$status" "$tmp/rss-err")"
    return 0
  fi
  rec value "$series/rss" "$(tail -1 "$tmp/gnu-time")"
  rec value "$series/fds" "$max"
}

# ---- The same lab started the moment the previous run exits ----
# Against a start once the kernel has released the previous run's
# namespaces: what the teardown a run leaves to the kernel costs the next.
section_b2b() {
  echo "== back to back (N=100)"
  local reps r status line
  reps=$([ -n "${QUICK:-}" ] && echo 3 || echo 7)
  for r in $(seq "$reps"); do
    "$NSR" --no-wait -- "$NK" $LAB 100 >/dev/null 2>"$tmp/err" || fail b2b/back "the run before: $(tail_of "$tmp/err")"
    status=0
    "$NSR" --no-wait -- "$NK" $LAB 100 >/dev/null 2>"$tmp/err" || status=$?
    line=$(grep '^nsrelease: wall_us=' "$tmp/err" || true)
    if [ "$status" = 0 ] && [ -n "$line" ]; then rec run b2b/back "$(field wall_us "$line")" 0
    else fail b2b/back "$(why "$status" "$tmp/err")"; fi
    # A run that waits until everything is released, then the settled one.
    "$NSR" -- "$NK" $LAB 100 >/dev/null 2>"$tmp/err" || fail b2b/settled "the run before: $(tail_of "$tmp/err")"
    run1 b2b/settled "$NK" $LAB 100
  done
}

# ---- Startup and fixed costs ----
# The floor any Go program pays (an empty main), nkscript's own process
# without a lab (--version: runtime and package initialisation, exit), and
# a trivial script (plus the lab's journal, the Starlark interpreter and
# the teardown); their page faults and what a first touch of a page costs.
section_startup() {
  echo "== startup and fixed costs"
  local r line
  mkdir -p "$tmp/empty"
  if ! (cd "$tmp/empty" && printf 'package main\n\nfunc main() {}\n' >main.go && $GO mod init empty >/dev/null 2>&1 && CGO_ENABLED=0 $GO build -o empty .) 2>"$tmp/err"; then
    fail startup/empty "building the empty program: $(tail_of "$tmp/err")"
  fi
  for r in $(seq 30); do
    run1 startup/empty "$tmp/empty/empty"
    run1 startup/version "$NK" --version
    run1 startup/trivial "$NK" testdata/bench/trivial.star
  done
  for r in 1 2 3 4 5; do
    gnu_value faults/empty %R "$tmp/empty/empty"
    gnu_value faults/version %R "$NK" --version
    gnu_value faults/trivial %R "$NK" testdata/bench/trivial.star
  done
  if line=$("$tmp/pagecost" 2>&1) && [ -n "$(field ns_per_page "$line")" ]; then
    rec value pagecost "$(field ns_per_page "$line")"
  else
    fail pagecost "$line"
  fi
}

# ---- Phases at N=100: nkscript --profile and chaingo's own timing ----
section_phases() {
  echo "== phases at N=100"
  if "$NSR" -- "$NK" --profile $LAB 100 2>"$tmp/profile" >/dev/null; then
    grep -v '^nsrelease:' "$tmp/profile" >"$R/profile.txt"
  else
    fail profile "$(tail_of "$tmp/profile")"
  fi
  if "$NSR" -- env CHAINGO_PROFILE=1 "$tmp/chaingo" 100 2>"$tmp/goprofile" >/dev/null; then
    grep -v '^nsrelease:' "$tmp/goprofile" >"$R/goprofile.txt"
  else
    fail goprofile "$(tail_of "$tmp/goprofile")"
  fi
}

# ---- BPF programs: datapath's BenchmarkBundledPrograms ----
# -v, so that a failed or skipped row's message is in bpf.txt.
section_bpf() {
  echo "== BPF programs (BPF_PROG_TEST_RUN)"
  local count status=0
  count=$([ -n "${QUICK:-}" ] && echo 3 || echo 7)
  rec param bpf_repeat 1000000
  rec param bpf_count "$count"
  $GO test -run '^$' -bench BundledPrograms -benchtime 1000000x -count "$count" -v ./datapath >"$R/bpf.txt" 2>&1 || status=$?
  [ "$status" = 0 ] || fail bpf "go test exited $status: $(grep -E '^(--- FAIL|FAIL|#)' "$R/bpf.txt" | head -3)"
}

# ---- What the drop monitor costs ----
# The chain lab at N=100 (its ping loads the monitor) and veth_tutorial.star
# (whose expect_* checks load it and explain its drops), each run with the
# monitor and with NKSCRIPT_DROP_MONITOR=off, interleaved; and the
# monitor's program per call and per recorded drop, from the kernel's BPF
# run-time statistics (datapath's BenchmarkDropMonitorProgram).
section_dropmon() {
  echo "== the drop monitor's cost"
  local r reps status=0
  reps=$([ -n "${QUICK:-}" ] && echo 3 || echo 11)
  for r in $(seq "$reps"); do
    run1 dropmon/chain/on "$NK" $LAB 100
    run1 dropmon/chain/off env NKSCRIPT_DROP_MONITOR=off "$NK" $LAB 100
    run1 dropmon/tutorial/on "$NK" scripts/veth_tutorial.star
    run1 dropmon/tutorial/off env NKSCRIPT_DROP_MONITOR=off "$NK" scripts/veth_tutorial.star
  done
  $GO test -run '^$' -bench DropMonitorProgram -benchtime 20000x -count 5 -v ./datapath >"$R/dropmon.txt" 2>&1 || status=$?
  [ "$status" = 0 ] || fail dropmon/prog "go test exited $status: $(grep -E '^(--- FAIL|FAIL|#)' "$R/dropmon.txt" | head -3)"
}

# ---- Go microbenchmarks against $BASE, by benchstat ----
section_micro() {
  echo "== Go microbenchmarks, against $BASE (benchstat)"
  local count r side dir micro='^Benchmark(Sysctl|Netns|VethPair|WaitReady)$'
  count=$([ -n "${QUICK:-}" ] && echo 3 || echo 8)
  rec param micro_count "$count"
  rec param micro_base "$BASE"
  git worktree add --detach "$tmp/base" "$BASE" >"$tmp/err" 2>&1 || { fail micro "git worktree add $BASE: $(tail_of "$tmp/err")"; return 0; }
  cp datapath/bench_test.go "$tmp/base/datapath/"
  # Compiled once, then run alternately, one round each, so that drift in
  # the machine during the minutes this takes hits both sides alike.
  (cd "$tmp/base" && $GO test -c -o "$tmp/datapath-base.test" ./datapath) >"$tmp/err" 2>&1 || { fail micro "building $BASE's tests: $(tail_of "$tmp/err")"; return 0; }
  $GO test -c -o "$tmp/datapath-head.test" ./datapath >"$tmp/err" 2>&1 || { fail micro "building the tests: $(tail_of "$tmp/err")"; return 0; }
  for r in $(seq "$count"); do
    for side in base head; do
      dir=datapath; [ $side = base ] && dir=$tmp/base/datapath
      (cd "$dir" && "$tmp/datapath-$side.test" -test.run '^$' -test.bench "$micro" -test.benchtime 200x -test.count 1) >>"$tmp/micro-$side" 2>&1 ||
        { fail micro "$side run $r: $(tail_of "$tmp/micro-$side")"; return 0; }
    done
  done
  $GO test -run '^$' -bench '^Benchmark(EnterNetns|WaitReadyIPv4)$' -benchtime 200x -count "$count" ./datapath >"$tmp/micro-enter" 2>&1 ||
    { fail micro "EnterNetns, WaitReadyIPv4: $(tail_of "$tmp/micro-enter")"; return 0; }
  # benchstat names the columns after the files.
  (cd "$tmp" && mv micro-base "$BASE" && mv micro-head HEAD && ./benchstat-bin "$BASE" HEAD) >"$tmp/benchstat" 2>&1 &&
    mv "$tmp/benchstat" "$R/benchstat.txt" || fail micro "benchstat: $(tail_of "$tmp/benchstat")"
  (cd "$tmp" && ./benchstat-bin -filter .name:EnterNetns -col /impl micro-enter) >"$tmp/benchstat-enter" 2>&1 &&
    mv "$tmp/benchstat-enter" "$R/benchstat-enter.txt" || fail micro "benchstat: $(tail_of "$tmp/benchstat-enter")"
  (cd "$tmp" && ./benchstat-bin -filter .name:WaitReadyIPv4 micro-enter) >"$tmp/benchstat-v4" 2>&1 &&
    mv "$tmp/benchstat-v4" "$R/benchstat-v4.txt" || fail micro "benchstat: $(tail_of "$tmp/benchstat-v4")"
}

# ---- Whole runs of the CLI: cmd/nkscript's benchmarks ----
# -v, so that a skipped benchmark's reason is in cli.txt.
section_cli() {
  echo "== whole runs of the CLI"
  local status=0
  rec param cli_runs 10
  $GO test -run '^$' -bench . -benchtime 10x -v ./cmd/nkscript >"$R/cli.txt" 2>&1 || status=$?
  [ "$status" = 0 ] || fail cli "go test exited $status: $(grep -E '^(--- FAIL|FAIL|#)' "$R/cli.txt" | head -3)"
}

# ---- The labs on three kernels in one command (issue 16) ----
# Series matrix/j1 and matrix/j2: `nkscript test --kernels host,6.1,6.12
# scripts`, guests cold-booted, one job then two.
section_matrix() {
  echo "== nkscript test on three kernels"
  local r j reps
  reps=$([ -n "${QUICK:-}" ] && echo 1 || echo 3)
  for r in $(seq "$reps"); do
    for j in 1 2; do
      time_run "matrix/j$j" "$NK" test --kernels host,6.1,6.12 -j "$j" --journal-dir="$tmp/journals" scripts
    done
  done
}

# ---- The microVM: cold, warm and host runs (issue 15) ----
# Series vm/{cold,warm,host}/{trivial,tutorial} (runs) and vm/{cold,warm}/test
# (`nkscript test scripts`). The guests live in a directory of the
# benchmark's own ($NKSCRIPT_VM_DIR), so no other guest is used or stopped.
section_vm() {
  echo "== the microVM: cold, warm and host"
  local reps r trivial=testdata/bench/trivial.star
  reps=$([ -n "${QUICK:-}" ] && echo 3 || echo 5)
  export NKSCRIPT_VM_DIR=$tmp/vmdir
  for r in $(seq "$reps"); do
    time_run vm/cold/trivial "$NK" --vm=always "$trivial"
    time_run vm/cold/tutorial "$NK" --vm=always scripts/tutorial.star
    time_run vm/host/trivial "$NK" --vm=never "$trivial"
    time_run vm/host/tutorial "$NK" --vm=never --prefix bench- scripts/veth_tutorial.star
  done
  time_run vm/cold/test "$NK" test --vm=always --journal-dir="$tmp/journals" scripts
  if "$NK" vm start >/dev/null 2>"$tmp/err"; then
    for r in $(seq "$reps"); do
      time_run vm/warm/trivial "$NK" --vm=always "$trivial"
      time_run vm/warm/tutorial "$NK" --vm=always scripts/tutorial.star
    done
    time_run vm/warm/test "$NK" test --vm=always --journal-dir="$tmp/journals" scripts
    "$NK" vm stop >/dev/null 2>&1 || fail vm/warm/stop "nkscript vm stop failed"
  else
    fail vm/warm/trivial "nkscript vm start: $(tail_of "$tmp/err")"
  fi
  unset NKSCRIPT_VM_DIR
  section_vm_snapshot
}

# A guest restored from qemu's saved state against a cold boot, in
# alternating pairs: BenchmarkSnapshotRestore (vm/snapshot_bench_test.go)
# writes its vm/snapshot/... records itself; its output is kept in
# $R/vm-snapshot.txt.
section_vm_snapshot() {
  local recs=$tmp/snapshot.tsv pairs status=0
  pairs=$([ -n "${QUICK:-}" ] && echo 3 || echo 11)
  NKSCRIPT_SNAPSHOT_RECORDS=$recs $GO test -run '^$' -bench '^BenchmarkSnapshotRestore$' \
    -benchtime="${pairs}x" -count=1 -v ./vm/ >"$R/vm-snapshot.txt" 2>&1 || status=$?
  if [ -s "$recs" ]; then
    cat "$recs" >>"$R/results.tsv"
  fi
  if [ "$status" != 0 ] || [ ! -s "$recs" ]; then
    fail vm/snapshot "BenchmarkSnapshotRestore: $(why "$status" "$R/vm-snapshot.txt")"
  fi
}

all="compile chain big b2b startup phases bpf dropmon micro cli matrix vm"
only=${BENCH_ONLY:-}
section_meta
for s in ${only:-$all}; do
  "section_$s"
done
status=0
if [ -n "$only" ]; then
  "$tmp/report" -results "$R" -sections "${only// /,}" || status=$?
else
  "$tmp/report" -results "$R" -o "$out" || status=$?
  echo "wrote $out"
fi
exit "$status"
