#!/usr/bin/env bash
# The reference run: the `cpu` profile on all of CIFAR-10, one stage at a time. Every stage checkpoints and
# resumes, so this can be stopped and started again across sessions; a finished stage is read from the
# cache. Each stage's wall time is appended to results/cpu-cifar10.stages.tsv (the README quotes it), each
# stage's partial results file is kept as results/partial/cpu-cifar10-<stage>.json (commit it as it lands: the
# report reads only results/*.json, so a partial file is never mistaken for the run), and the last step writes
# results/cpu-cifar10.json from every stage. The stage "proxy" is claim 4's label-scarce CIFAR-10 proxy: the
# whole profile with 500 labelled images per class and the first training seed (AT, MAT and ALP come from the
# first SUP only, so further seeds would judge claim 4 on SAT alone; the self-supervised encoders come from the
# cache), written to results/cpu-cifar10-labelled500.json.
#
#   bash scripts/reference_run.sh                 # every stage still missing, then the results file
#   STAGES="train sat" bash scripts/reference_run.sh   # only these stages
#   STAGES="evaluate robustness" COLLECT=1 bash scripts/reference_run.sh   # ... and then the results file
#   JOBS="evaluate:amdim:pixel" bash scripts/reference_run.sh   # one job of a stage ahead of it (see below)
set -euo pipefail
source "$(dirname "$0")/_env.sh"
THREADS=${SATNB_THREADS:-2}
LOG=${REFERENCE_LOG:-results/cpu-cifar10.stages.tsv}
PARTIAL=results/partial
mkdir -p "$PARTIAL"
# a unit's row names the commit it started from ($commit, set by run_unit), not HEAD when it ended: commits made
# while a stage runs do not change the code it imported
log_stage() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(( $(date +%s) - t0 ))" "$(date -u +%FT%TZ)" "$commit" "$THREADS" >> "$LOG"
}
[ -f "$LOG" ] || printf 'stage\tseconds\tfinished_at\tgit_commit\tthreads\n' > "$LOG"
# A stage killed without a signal it can trap (SIGKILL, a machine taken back at a session's end) leaves its
# heartbeat: the stage, its seconds so far (to within a minute) and when it was last seen.
# The next start logs it as "<stage> (stopped)", so the stage's time is still the sum of its rows.
BEAT="${SATNB_CACHE:-$HOME/.cache/satnb}/reference-run.heartbeat"
mkdir -p "$(dirname "$BEAT")"
if [ -s "$BEAT" ]; then
  IFS=$'\t' read -r b_stage b_seconds b_seen b_commit b_threads < "$BEAT"
  ago=$(( $(date +%s) - $(date -d "$b_seen" +%s) ))
  if [ "$ago" -lt $(( 2 * ${HEARTBEAT_SECONDS:-60} )) ]; then
    echo "[reference] stage $b_stage of another reference run was alive ${ago} s ago ($BEAT): wait for it or stop it"
    exit 1
  fi
  printf '%s (stopped)\t%s\t%s\t%s\t%s\n' "$b_stage" "$b_seconds" "$b_seen" "$b_commit" "$b_threads" >> "$LOG"
  echo "[reference] the last run of stage $b_stage stopped after ${b_seconds} s (logged as '$b_stage (stopped)')"
  rm -f "$BEAT"
fi
stage_over() { kill "$beat_pid" 2>/dev/null || true; wait "$beat_pid" 2>/dev/null || true; rm -f "$BEAT"; }
beat() {  # every minute, this stage's seconds so far
  while sleep "${HEARTBEAT_SECONDS:-60}" && kill -0 $$ 2>/dev/null; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(( $(date +%s) - t0 ))" "$(date -u +%FT%TZ)" "$commit" "$THREADS" \
      > "$BEAT.tmp" && mv "$BEAT.tmp" "$BEAT"
  done
}
# one unit of the run (a stage, or one job of a stage), timed and logged under $1, whatever way it ends
run_unit() {
  unit=$1; shift  # global: the EXIT trap reads it after the function has gone
  t0=$(date +%s) commit=$(git rev-parse --short HEAD)
  # an interrupted or failed unit still logs the time it ran (as "<name> (interrupted)" or "(failed)"): it
  # resumes from its checkpoints, so a stage's wall time is the sum of its rows
  beat "$unit" >/dev/null 2>&1 & beat_pid=$!
  trap 'trap - EXIT; stage_over; log_stage "$unit (interrupted)"; exit 130' INT TERM HUP
  trap 'stage_over; log_stage "$unit (failed)"' EXIT
  "$@"
  trap - INT TERM HUP EXIT
  stage_over
  log_stage "$unit"
}
if [ -n "${JOBS:-}" ]; then
  # some jobs of a stage ahead of it, one at a time (names as `python -m satnb sweep --profile cpu --dry-run`
  # lists them, e.g. JOBS="evaluate:amdim:pixel robustness:amdim:pixel"): each logged as "<stage> (job <name>)",
  # so its time counts in its stage's, and the stage later reads it from the cache
  for job in $JOBS; do
    echo "[reference] job $job ($THREADS threads)"
    run_unit "${job%%:*} (job $job)" "${SATNB_VENV:-.venv}"/bin/python -m satnb sweep --profile cpu --cluster debug \
      --jobs "$job" --threads "$THREADS" --quiet --out "$PARTIAL/cpu-cifar10-jobs.json"
  done
  echo "[reference] took $(( $(date +%s) - start )) s"
  exit 0
fi
# the CLI always trains (or loads) the encoders first; SAT and the baselines are loaded from the cache
# before the evaluation and the attack zoo, so that those two stages cover every model
for stage in ${STAGES:-train sat baselines evaluate robustness proxy}; do
  scarce=() out="$PARTIAL/cpu-cifar10-$stage.json"
  case "$stage" in
    train) stages=train ;;
    sat|baselines) stages="train,$stage" ;;
    evaluate|robustness) stages="train,sat,baselines,$stage" ;;
    proxy) stages="train,sat,baselines,evaluate,robustness" scarce=(--labelled-per-class 500 --seeds 1)
           out=results/cpu-cifar10-labelled500.json ;;
    *) echo "[reference] unknown stage $stage (train, sat, baselines, evaluate, robustness, proxy)"; exit 2 ;;
  esac
  echo "[reference] stage $stage (--stages $stages, $THREADS threads)"
  run_unit "$stage" "${SATNB_VENV:-.venv}"/bin/python -m satnb run --profile cpu --stages "$stages" \
    --threads "$THREADS" --quiet "${scarce[@]}" --out "$out" --force
done
if [ -z "${STAGES:-}" ] || [ "${COLLECT:-0}" = 1 ]; then
  echo "[reference] collecting every stage into results/cpu-cifar10.json"
  "${SATNB_VENV:-.venv}"/bin/python -m satnb run --profile cpu --threads "$THREADS" --quiet --out results/cpu-cifar10.json --force
  "${SATNB_VENV:-.venv}"/bin/python -m satnb report results/cpu-cifar10.json
fi
echo "[reference] took $(( $(date +%s) - start )) s; the README's stage table: python scripts/sync_readme.py"
