#!/usr/bin/env bash
# One prepared pass on a GPU machine, run as a single command because device time is scarce:
#   1. ResNet-20 on Fashion-MNIST (experiments/resnet_fashion.py), on 2 reserved cores + the GPU,
#      in the background (RESNET_S=0 skips it; RESNET_ARGS passes flags);
#   2. the full lenet-fashion protocol (16 rounds), the same way, after it (LOTTERY_S=0 skips it);
#   3. meanwhile the fast test suite on the other cores (everything must jit on the GPU, and the
#      tolerances must survive its float32 matmuls); names of failures print as they happen (-v);
#   4. then, alone on the machine, the benchmarks (BENCH_S=0 skips them).
# Each part has its own time limit so that one slow part cannot starve the others. Measured on one
# H100 (2026-11-26): fast tests 196 s with 12 workers; a lenet-fashion round 14 s (first two ~17 and
# 33 s: compilation), so the whole protocol ~4 min; the slow tests are off by default (4 of them
# took 100 s there; CI runs them on CPU).
#
#   OUT=runs/accelerator_check bash benchmarks/accelerator_check.sh [python]
# Needs funcnn importable (pip install -e . or PYTHONPATH=.), pytest-xdist, and Fashion-MNIST.
set -u
PY=${1:-python3}
OUT=${OUT:-runs/accelerator_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# Several processes share one GPU: allocate on demand instead of 75% of the card each.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
CORES=$(nproc)
# Pin the protocol to cores 0-1 and the tests to the rest, so their CPU work does not mix (needs 4+ cores).
if [ "$CORES" -ge 4 ]; then PIN_LT="taskset -c 0-1"; PIN_TESTS="taskset -c 2-$((CORES - 1))"; else PIN_LT=""; PIN_TESTS=""; fi

$PY -c "import jax, optax, chex; print('jax', jax.__version__, 'optax', optax.__version__, 'chex', chex.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

part() {  # name, seconds, command...: run with a limit, report rc and wall time
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "== $name: rc=$? wall=$((SECONDS - t0))s (limit ${limit}s)"
}

# The run folders hold many files; keep them out of $OUT (results.json is copied back at the end).
LT_OUT=${LOTTERY_OUT:-/tmp/accelerator_check_lottery}
RN_OUT=${RESNET_OUT:-/tmp/accelerator_check_resnet}
(
  if [ "${RESNET_S:-300}" -gt 0 ]; then
    part "resnet20-fashion" "${RESNET_S:-300}" $PIN_LT $PY experiments/resnet_fashion.py \
      --out "$RN_OUT" ${RESNET_ARGS:-} > "$OUT/resnet_fashion.log" 2>&1
  fi
  if [ "${LOTTERY_S:-330}" -gt 0 ]; then
    part "lenet-fashion" "${LOTTERY_S:-330}" $PIN_LT $PY experiments/lottery_ticket.py \
      --preset lenet-fashion --out "$LT_OUT" --no-progress > "$OUT/lenet_fashion.log" 2>&1
  fi
) &
LT=$!

part "tests (fast)" "${FAST_S:-220}" $PIN_TESTS $PY -m pytest -n "${WORKERS:-12}" -v --tb=short \
  -p no:cacheprovider -p no:benchmark -m "not slow" tests > "$OUT/tests_fast.log" 2>&1
grep -E "^(FAILED|ERROR) " "$OUT/tests_fast.log"; tail -1 "$OUT/tests_fast.log"
if [ "${SLOW_S:-0}" -gt 0 ]; then
  part "tests (slow)" "$SLOW_S" $PIN_TESTS $PY -m pytest -n "${WORKERS:-12}" -v --tb=short \
    -p no:cacheprovider -p no:benchmark -m slow tests > "$OUT/tests_slow.log" 2>&1
  grep -E "^(FAILED|ERROR) " "$OUT/tests_slow.log"; tail -1 "$OUT/tests_slow.log"
fi

wait $LT
cat "$OUT/resnet_fashion.log" "$OUT/lenet_fashion.log" 2>/dev/null
cp "$RN_OUT"/results.json "$OUT/resnet_fashion_results.json" 2>/dev/null
cp "$LT_OUT"/*/results.json "$OUT/lenet_fashion_results.json" 2>/dev/null

if [ "${BENCH_S:-200}" -gt 0 ]; then
  part "benchmarks" "${BENCH_S:-200}" $PY -m benchmarks --out "$OUT/bench"
fi
sed -n '/= FAILURES =/,/short test summary/p' "$OUT/tests_fast.log" | head -200
