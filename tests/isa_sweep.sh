#!/usr/bin/env bash
# Runs the tests that compare numbers under several CPU instruction sets.
#
#   tests/isa_sweep.sh [ISA...] [-- PYTEST_ARGS...]
#
# XLA's CPU code differs with the instruction set it may use (fused
# multiply-adds, vector widths, native bfloat16), and so does float rounding:
# a tolerance that holds on one machine's rounding alone fails on another's.
# This runs NUMERIC_TESTS once per ISA, as `XLA_FLAGS=--xla_cpu_max_isa=ISA`
# (an ISA above what the CPU has runs at the CPU's best; "native" sets no
# cap), and prints one summary line per ISA. Default ISAs: SSE4_2 AVX2
# AVX512 native. The names XLA knows: SSE4_2 AVX AVX2 AVX512 AVX512_VNNI
# AVX512_BF16 AMX AMX_INT8 AMX_BF16 AVX512_FP16 (x86), NEON SVE SVE2 (ARM).
# Exit status: the number of ISAs whose run failed (their output is kept).
set -uo pipefail
cd "$(dirname "$0")/.."

NUMERIC_TESTS=(
  tests/test_torch_reference.py tests/test_torch_schedules.py tests/test_optax_equivalence.py
  tests/test_rmsprop_equivalence.py tests/test_convergence.py tests/test_properties.py
  tests/test_schedules.py tests/test_landscapes.py tests/test_landscape_failures.py
  tests/test_rounding.py tests/test_model_transforms.py
  tests/test_composition.py tests/test_optimizer_arguments.py tests/test_hyperparameters.py
  tests/test_monitoring.py tests/test_optim_tools.py tests/test_engine_reference.py
  tests/test_demo.py tests/test_sweep_landscapes.py
)

isas=()
while [[ $# -gt 0 && "$1" != "--" ]]; do isas+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#isas[@]} -eq 0 ]] && isas=(SSE4_2 AVX2 AVX512 native)

grep -m1 "model name" /proc/cpuinfo 2>/dev/null || true
failed=0
summary=()
for isa in "${isas[@]}"; do
  if [[ "$isa" == native ]]; then flags="${XLA_FLAGS:-}"; else flags="${XLA_FLAGS:-} --xla_cpu_max_isa=$isa"; fi
  echo "=== $isa: XLA_FLAGS='$flags'"
  log=$(mktemp)
  XLA_FLAGS="$flags" python3 -m pytest -q -p no:cacheprovider -n auto "${NUMERIC_TESTS[@]}" "$@" \
      2>&1 | tee "$log" | grep -E "^(FAILED|ERROR)|passed|failed"
  status=${PIPESTATUS[0]}
  summary+=("$isa: $(grep -E "passed|failed" "$log" | tail -1)")
  if [[ $status -ne 0 ]]; then
    failed=$((failed + 1))
    summary+=("  (the whole output: $log)")
  else
    rm -f "$log"
  fi
done
printf '%s\n' "--- summary" "${summary[@]}"
exit $failed
