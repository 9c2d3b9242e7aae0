#!/usr/bin/env bash
# The reference run: the `cpu` profile on all of CIFAR-10, one stage at a time. Every stage checkpoints and
# resumes, so this can be stopped and started again across sessions; a finished stage is read from the
# cache. Each stage's wall time is appended to results/cpu-cifar10.stages.tsv (the README quotes it), each
# stage's partial results file is kept as results/partial/cpu-cifar10-<stage>.json (commit it as it lands: the
# report reads only results/*.json, so a partial file is never mistaken for the run), and the last step writes
# results/cpu-cifar10.json from every stage. The stage "proxy" is claim 4's label-scarce CIFAR-10 proxy: the
# whole profile with 500 labelled images per class (the self-supervised encoders come from the cache), written
# to results/cpu-cifar10-labelled500.json.
#
#   bash scripts/reference_run.sh                 # every stage still missing, then the results file
#   STAGES="train sat" bash scripts/reference_run.sh   # only these stages
#   STAGES="evaluate robustness" COLLECT=1 bash scripts/reference_run.sh   # ... and then the results file
set -euo pipefail
source "$(dirname "$0")/_env.sh"
THREADS=${SATNB_THREADS:-2}
LOG=results/cpu-cifar10.stages.tsv
PARTIAL=results/partial
mkdir -p "$PARTIAL"
log_stage() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(( $(date +%s) - t0 ))" "$(date -u +%FT%TZ)" \
    "$(git rev-parse --short HEAD)" "$THREADS" >> "$LOG"
}
[ -f "$LOG" ] || printf 'stage\tseconds\tfinished_at\tgit_commit\tthreads\n' > "$LOG"
# the CLI always trains (or loads) the encoders first; SAT and the baselines are loaded from the cache
# before the evaluation and the attack zoo, so that those two stages cover every model
for stage in ${STAGES:-train sat baselines evaluate robustness proxy}; do
  scarce=() out="$PARTIAL/cpu-cifar10-$stage.json"
  case "$stage" in
    train) stages=train ;;
    sat|baselines) stages="train,$stage" ;;
    evaluate|robustness) stages="train,sat,baselines,$stage" ;;
    proxy) stages="train,sat,baselines,evaluate,robustness" scarce=(--labelled-per-class 500)
           out=results/cpu-cifar10-labelled500.json ;;
    *) echo "[reference] unknown stage $stage (train, sat, baselines, evaluate, robustness, proxy)"; exit 2 ;;
  esac
  t0=$(date +%s)
  # an interrupted stage still logs the time it ran (as "<stage> (interrupted)"): it resumes from its checkpoints,
  # so the stage's wall time is the sum of its rows
  trap 'log_stage "$stage (interrupted)"; exit 130' INT TERM HUP
  echo "[reference] stage $stage (--stages $stages, $THREADS threads)"
  "${SATNB_VENV:-.venv}"/bin/python -m satnb run --profile cpu --stages "$stages" --threads "$THREADS" --quiet \
    "${scarce[@]}" --out "$out" --force
  trap - INT TERM HUP
  log_stage "$stage"
done
if [ -z "${STAGES:-}" ] || [ "${COLLECT:-0}" = 1 ]; then
  echo "[reference] collecting every stage into results/cpu-cifar10.json"
  "${SATNB_VENV:-.venv}"/bin/python -m satnb run --profile cpu --threads "$THREADS" --quiet --out results/cpu-cifar10.json --force
  "${SATNB_VENV:-.venv}"/bin/python -m satnb report results/cpu-cifar10.json
fi
echo "[reference] took $(( $(date +%s) - start )) s"
