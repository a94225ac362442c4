#!/usr/bin/env bash
# Multi-fidelity and early stopping on real training: MNIST 5k (../shared/datasets/mnist_5k.csv.gz).
#
# For each search seed (0,1,2): full-fidelity regularized evolution (TRIALS trials x EPOCHS
# epochs), Hyperband and ASHA limited to a third of evolution's epochs, and evolution with the
# learning-curve and the median stoppers. Every run ends with final training of its best arch
# from scratch (FINAL_SEEDS seeds x FINAL_EPOCHS) on train+valid and a test split the search
# never saw; the table reports the test accuracy (mean and std over search seeds) and the epochs
# each search trained.
#
#   bash benches/fidelity/mnist.sh            # defaults below
#   SPACE=mlp TRIALS=40 EPOCHS=20 bash benches/fidelity/mnist.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/datasets/mnist_5k.csv.gz}
TRIALS=${TRIALS:-40}
EPOCHS=${EPOCHS:-20}
FINAL_SEEDS=${FINAL_SEEDS:-3}
FINAL_EPOCHS=${FINAL_EPOCHS:-20}
SEEDS=${SEEDS:-"0 1 2"}
EXTRA=${EXTRA:-}
OUT=${OUT:-target/fidelity-mnist}
BIN=${BIN:-target/release/nasforge}
[ -x "$BIN" ] || cargo build --release -p nasforge
rm -rf "$OUT" && mkdir -p "$OUT"
BUDGET=$(( TRIALS * EPOCHS / 3 ))
common=(--data "$DATA" --target label --epochs "$EPOCHS" --final-seeds "$FINAL_SEEDS"
        --final-epochs "$FINAL_EPOCHS" --json $EXTRA)
# PARALLEL=1 runs every (method, seed) at once, one training thread each (a many-core machine).
run() {
  local name=$1; shift; local seed=${*: -1}; set -- "${@:1:$#-1}"
  local threads=(); [ "${PARALLEL:-0}" = 1 ] && threads=(--threads 1)
  "$BIN" search "${common[@]}" "${threads[@]}" --seed "$seed" --run-dir "$OUT/$name-$seed" "$@" > "$OUT/$name-$seed.json"
}
for seed in $SEEDS; do
  for job in "rea --strategy rea --trials $TRIALS" \
             "hyperband --scheduler hyperband --trials 100000 --epoch-budget $BUDGET" \
             "asha --scheduler asha --trials 100000 --epoch-budget $BUDGET" \
             "rea-curve --strategy rea --stopper curve --trials $TRIALS" \
             "rea-median --strategy rea --stopper median --trials $TRIALS"; do
    # METHODS="rea-curve asha" limits the run to those methods.
    [ -n "${METHODS:-}" ] && [[ " $METHODS " != *" ${job%% *} "* ]] && continue
    # shellcheck disable=SC2086
    if [ "${PARALLEL:-0}" = 1 ]; then run $job "$seed" & else run $job "$seed"; fi
  done
done
wait
python3 - "$OUT" "$SEEDS" <<'EOF'
import json, statistics, sys, pathlib
out, seeds = pathlib.Path(sys.argv[1]), sys.argv[2].split()
print(f"{'method':<12} {'test acc mean ± std (3 search seeds)':>38} {'epochs trained':>15} {'trials':>7} {'stopped':>8} {'seconds':>8}")
for m in ["rea", "hyperband", "asha", "rea-curve", "rea-median"]:
    if not all((out / f"{m}-{s}.json").exists() for s in seeds):
        continue
    docs = [json.loads((out / f"{m}-{s}.json").read_text()) for s in seeds]
    acc = [d["test_accuracy_mean"] for d in docs]
    ep = [d["epochs_trained"] for d in docs]
    print(f"{m:<12} {statistics.mean(acc):>30.2f} ± {statistics.pstdev(acc):<5.2f} {statistics.mean(ep):>15.0f} "
          f"{statistics.mean(d['trials'] for d in docs):>7.0f} {statistics.mean(d['pruned'] for d in docs):>8.1f} "
          f"{statistics.mean(d['seconds'] for d in docs):>8.0f}")
EOF
