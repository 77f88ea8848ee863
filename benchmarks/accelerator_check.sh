#!/usr/bin/env bash
# One prepared pass on a GPU machine, run as a single command because device time is scarce. Parts
# run one after another, alone on the GPU (so their timings are clean), each with its own time limit
# (seconds; 0 skips the part):
#   RESNET_S   ResNet-20 on Fashion-MNIST (experiments/resnet_fashion.py; RESNET_ARGS adds flags)
#   LOTTERY_S  the full lenet-fashion protocol (16 rounds; LOTTERY_ARGS adds flags)
#   POP_S      the population sweep (python -m benchmarks.population; POP_ARGS adds flags)
#   PRUNE_S    pruning against inference speed on the GPU (python -m experiments.prune_speed, LeNet-300-100
#              and Conv-2: 23 min of training on 2 CPU cores; PRUNE_ARGS adds flags; default 0: size it first)
#   FAST_S     the fast test suite, WORKERS processes (pytest-xdist)
#   SLOW_S     the slow tests
#   BENCH_S    python -m benchmarks
# Measured: on one H100 (2026-11-26) the fast tests took 196 s with 12 workers and a lenet-fashion
# round 14 s with 4 members per chunk; on one H200 (2026-11-27) ResNet-20 took 1.36 s an epoch.
#
#   OUT=runs/accelerator_check bash benchmarks/accelerator_check.sh [python]
# Needs funcnn and experiments importable (pip install -e . or PYTHONPATH=.), pytest-xdist, and Fashion-MNIST.
set -u
PY=${1:-python3}
OUT=${OUT:-runs/accelerator_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# Several processes share one GPU: allocate on demand instead of 75% of the card each.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

$PY -c "import jax, optax, chex; print('jax', jax.__version__, 'optax', optax.__version__, 'chex', chex.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

part() {  # name, seconds, command...: run with a limit, report rc and wall time
  local name=$1 limit=$2; shift 2
  [ "$limit" -gt 0 ] || return 0
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "== $name: rc=$? wall=$((SECONDS - t0))s (limit ${limit}s)"
}

# Run folders hold many files; keep them out of $OUT (results.json is copied back).
RN_OUT=${RESNET_OUT:-/tmp/accelerator_check_resnet}
LT_OUT=${LOTTERY_OUT:-/tmp/accelerator_check_lottery}
part "resnet20-fashion" "${RESNET_S:-120}" $PY experiments/resnet_fashion.py --out "$RN_OUT" --no-progress \
  ${RESNET_ARGS:-} > "$OUT/resnet_fashion.log" 2>&1
tail -3 "$OUT/resnet_fashion.log" 2>/dev/null
cp "$RN_OUT"/results.json "$OUT/resnet_fashion_results.json" 2>/dev/null
part "lenet-fashion" "${LOTTERY_S:-330}" $PY experiments/lottery_ticket.py --preset lenet-fashion \
  --out "$LT_OUT" --no-progress ${LOTTERY_ARGS:-} > "$OUT/lenet_fashion.log" 2>&1
cat "$OUT/lenet_fashion.log" 2>/dev/null | grep -v "^\s*$" | tail -40
cp "$LT_OUT"/results.json "$OUT/lenet_fashion_results.json" 2>/dev/null
PS_OUT=${PRUNE_OUT:-/tmp/accelerator_check_prune_speed}
part "prune speed" "${PRUNE_S:-0}" $PY -m experiments.prune_speed --out "$PS_OUT" --no-progress ${PRUNE_ARGS:-} \
  > "$OUT/prune_speed.log" 2>&1
cp "$PS_OUT"/prune_speed.md "$PS_OUT"/prune_speed.json "$PS_OUT"/prune_speed.png "$OUT/" 2>/dev/null
part "population sweep" "${POP_S:-120}" $PY -m benchmarks.population --out "$OUT/population.json" ${POP_ARGS:-}
part "tests (fast)" "${FAST_S:-220}" $PY -m pytest -n "${WORKERS:-12}" -q --tb=short -p no:cacheprovider \
  -p no:benchmark -m "not slow" tests > "$OUT/tests_fast.log" 2>&1
grep -E "^(FAILED|ERROR) " "$OUT/tests_fast.log"; tail -1 "$OUT/tests_fast.log"
part "tests (slow)" "${SLOW_S:-0}" $PY -m pytest -n "${WORKERS:-12}" -q --tb=short -p no:cacheprovider \
  -p no:benchmark -m slow tests > "$OUT/tests_slow.log" 2>&1
[ "${SLOW_S:-0}" -gt 0 ] && { grep -E "^(FAILED|ERROR) " "$OUT/tests_slow.log"; tail -1 "$OUT/tests_slow.log"; }
part "benchmarks" "${BENCH_S:-0}" $PY -m benchmarks --out "$OUT/bench"
sed -n '/= FAILURES =/,/short test summary/p' "$OUT/tests_fast.log" | head -150
