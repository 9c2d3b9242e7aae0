#!/usr/bin/env bash
# The GPU path in one device session (at most 8 minutes on one H200): run from anywhere in the repository,
#
#   bash scripts/gpu_check.sh          # on the GPU box: plain python3 with torch, no venv, no network
#   SATNB_DEVICE=cpu bash scripts/gpu_check.sh --tiny   # the same script on a CPU, in well under a minute
#
# Stages, in this order, each timed:
#   1. device     what torch sees (device, capability, bf16, memory) and satnb's device and precision
#   2. tests      the CUDA-marked tests: python3 -m pytest -q -m cuda tests/ (they skip without CUDA)
#   3. smoke      the smoke profile end to end on the device: python3 -m satnb run --profile smoke, with a fresh
#                 SATNB_CACHE under /tmp and CIFAR-10 from .data/cifar10-jpeg.tar.gz (skipped with --tiny)
#   4. benchmark  benchmarks/gpu_check.py: throughput of every stage of the paper profile, projected wall times,
#                 written to results/gpu-check.json (with --tiny: to the scratch folder)
# Every stage runs even when an earlier one failed (so one session always yields the measurement); the exit
# status is 1 when any stage failed, and the summary names it. When OUT names a folder, each stage's log, the
# smoke run's results, gpu-check.json and the summary are written there (7 files).
# Environment: PYTHON (default python3), SATNB_DEVICE, SATNB_DATA (default .data when it holds the archive),
# TESTS_TIMEOUT / SMOKE_TIMEOUT / BENCH_TIMEOUT (seconds; default 100 / 150 / 210).
set -uo pipefail   # no -e: a failed stage is recorded and the next one still runs

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
TINY=0
for arg in "$@"; do
  case "$arg" in
    --tiny) TINY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $arg (use --tiny or --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d /tmp/satnb-gpu-check.XXXXXX)
export SATNB_CACHE="$WORK/cache"   # fresh: nothing cached from an earlier run
if [ -z "${SATNB_DATA:-}" ] && [ -e "$ROOT/.data/cifar10-jpeg.tar.gz" ]; then
  export SATNB_DATA="$ROOT/.data"
fi
LOGS=${OUT:-}
if [ -n "$LOGS" ]; then mkdir -p "$LOGS"; else LOGS="$WORK/logs"; mkdir -p "$LOGS"; fi
if [ "$TINY" = 1 ]; then RESULTS="$WORK/results"; else RESULTS="$ROOT/results"; fi
TESTS_TIMEOUT=${TESTS_TIMEOUT:-100}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-150}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-210}

SUMMARY=()
FAILED=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# stage NAME LOGFILE COMMAND...: run it, tee its output into $LOGS/LOGFILE, record its time and status
stage() {
  local name=$1 log=$2
  shift 2
  echo
  echo "=== [$name] $*"
  local t0 rc dt
  t0=$(now)
  "$@" 2>&1 | tee "$LOGS/$log"
  rc=${PIPESTATUS[0]}
  dt=$(elapsed "$t0")
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '%-10s ok      %7s s' "$name" "$dt")")
  else
    local why="exit $rc"
    [ "$rc" -eq 124 ] && why="timed out"
    SUMMARY+=("$(printf '%-10s FAILED  %7s s  (%s)' "$name" "$dt" "$why")")
    FAILED+=("$name ($why)")
  fi
  echo "=== [$name] $([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $dt s"
  return 0
}

device_info() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  "$PY" - <<'EOF'
import os
import platform

import torch

from satnb.core.precision import effective_precision, get_precision
from satnb.core.environment import get_device

print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.get_num_threads()} CPU threads")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"cuda:0 {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, "
          f"bf16 {torch.cuda.is_bf16_supported(including_emulation=False)}, {torch.cuda.device_count()} device(s)")
else:
    print("no CUDA device")
device = get_device()
print(f"satnb: device {device}, precision {effective_precision(device)} (asked: {get_precision()}), "
      f"SATNB_DATA={os.environ.get('SATNB_DATA')}, SATNB_CACHE={os.environ.get('SATNB_CACHE')}")
try:
    import faiss  # noqa: F401
    print("faiss: installed")
except ImportError:
    print("faiss: not installed (the kNN uses its torch backend on CUDA)")
EOF
}

smoke() {
  [ -n "${SATNB_DATA:-}" ] || echo "note: no SATNB_DATA and no .data/cifar10-jpeg.tar.gz: the smoke profile falls back to digits"
  timeout --kill-after=10 "$SMOKE_TIMEOUT" "$PY" -m satnb run --profile smoke --out "$WORK/smoke-results.json" --quiet
  local rc=$?
  if [ -f "$WORK/smoke-results.json" ]; then
    "$PY" -m satnb report "$WORK/smoke-results.json" | head -40
    [ -z "${OUT:-}" ] || cp "$WORK/smoke-results.json" "$OUT/smoke-results.json"
  fi
  return $rc
}

start=$(now)
echo "[gpu-check] $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT, scratch $WORK, logs $LOGS$([ "$TINY" = 1 ] && echo ', --tiny')"

stage device device.log device_info
stage tests tests.log timeout --kill-after=10 "$TESTS_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/
if [ "$TINY" = 1 ]; then
  echo
  echo "=== [smoke] skipped (--tiny)"
  SUMMARY+=("$(printf '%-10s skipped (--tiny)' smoke)")
else
  stage smoke smoke.log smoke
fi
BENCH_ARGS=(--out "$RESULTS" --budget-s "$((BENCH_TIMEOUT > 60 ? BENCH_TIMEOUT - 40 : BENCH_TIMEOUT))")
[ "$TINY" = 1 ] && BENCH_ARGS+=(--tiny)
stage benchmark benchmark.log timeout --kill-after=10 "$BENCH_TIMEOUT" "$PY" benchmarks/gpu_check.py "${BENCH_ARGS[@]}"

{
  echo
  echo "=== summary ($(elapsed "$start") s in all)"
  printf '%s\n' "${SUMMARY[@]}"
  records=()
  { [ "$TINY" = 1 ] && [ -n "${OUT:-}" ]; } || records+=("$RESULTS/gpu-check.json")
  [ -z "${OUT:-}" ] || records+=("$OUT/gpu-check.json")
  echo "record: ${records[*]}"
  if [ "${#FAILED[@]}" -gt 0 ]; then echo "FAILED: ${FAILED[*]}"; else echo "all stages passed"; fi
} | tee "$LOGS/summary.txt"
# the scratch folder goes when everything worth keeping is in $OUT; else it keeps the logs and the record
if [ -n "${OUT:-}" ]; then rm -rf "$WORK"; else rm -rf "$SATNB_CACHE"; fi
[ "${#FAILED[@]}" -eq 0 ] || exit 1
exit 0
