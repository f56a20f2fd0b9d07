# bench_vm.sh: sourced by bench.sh. vm_section writes $tmp/vm.md: the same
# scripts run in a microVM booted for the run (cold), in a warm guest
# (nkscript vm start), and on the host, whole process each, interleaved;
# plus `nkscript test scripts` cold and warm. BENCH_ONLY=vm runs this
# section alone and prints it. The guests live in a directory of the
# benchmark's own ($NKSCRIPT_VM_DIR), so no other guest is used or stopped.
vm_section() {
  local reps=5 trivial=testdata/bench/trivial.star vmdir=$tmp/vm
  [ "${QUICK:-}" = 1 ] && reps=3
  if ! command -v qemu-system-x86_64 >/dev/null; then
    printf '## The microVM: cold, warm and host runs\n\nnot measured: qemu-system-x86_64 is not installed\n\n' >"$tmp/vm.md"
    return
  fi
  vm_time() { # vm_time FILE CMD...: appends the run's wall time in µs
    local f=$1 s; shift
    s=$(now_us)
    NKSCRIPT_VM_DIR=$vmdir "$@" >/dev/null 2>"$tmp/vm-err" || { echo "$* failed:"; cat "$tmp/vm-err"; exit 1; }
    echo $(( $(now_us) - s )) >>"$tmp/$f"
  }
  rm -f "$tmp"/vm-*.us
  for _ in $(seq "$reps"); do
    vm_time vm-cold-trivial.us "$NK" --vm=always "$trivial"
    vm_time vm-cold-tutorial.us "$NK" --vm=always scripts/tutorial.star
    vm_time vm-host-trivial.us "$NK" --vm=never "$trivial"
    vm_time vm-host-tutorial.us "$NK" --vm=never --prefix bench- scripts/veth_tutorial.star
  done
  vm_time vm-cold-test.us "$NK" test --vm=always scripts
  NKSCRIPT_VM_DIR=$vmdir "$NK" vm start >/dev/null
  for _ in $(seq "$reps"); do
    vm_time vm-warm-trivial.us "$NK" --vm=always "$trivial"
    vm_time vm-warm-tutorial.us "$NK" --vm=always scripts/tutorial.star
  done
  vm_time vm-warm-test.us "$NK" test --vm=always scripts
  NKSCRIPT_VM_DIR=$vmdir "$NK" vm stop >/dev/null
  vm_s() { awk '{printf "%.2f", $1/1e6}' < <(med <"$tmp/$1"); }
  {
    echo "## The microVM: cold, warm and host runs"
    echo
    echo "Whole process, median of $reps runs (\`nkscript test scripts\`: one run). Cold boots a microVM for the run;"
    echo "warm runs in a guest \`nkscript vm start\` left running; the host has no netkit, so its tutorial row is the same"
    echo "lab on veth (scripts/veth_tutorial.star)."
    echo
    echo "| script | cold | warm | host | cold ÷ warm |"
    echo "|---|---|---|---|---|"
    for s in trivial tutorial; do
      echo "| $s | $(vm_s vm-cold-$s.us) s | $(vm_s vm-warm-$s.us) s | $(vm_s vm-host-$s.us) s | $(awk -v c="$(med <"$tmp/vm-cold-$s.us")" -v w="$(med <"$tmp/vm-warm-$s.us")" 'BEGIN {printf "%.1f×", c/w}') |"
    done
    echo "| \`nkscript test scripts\` | $(vm_s vm-cold-test.us) s | $(vm_s vm-warm-test.us) s | | |"
    echo
  } >"$tmp/vm.md"
}
