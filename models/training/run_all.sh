#!/usr/bin/env bash
# Regenerates the training data, trains both folds, picks thresholds on inner validation, evaluates each fold on
# its held-out case, checks the raw longitudinal FLAIRs, exports the ONNX variants + manifest, checks ONNX vs
# torch, draws the figures and runs the classical baseline. Seeded; CPU, 1 torch thread per fold.
#
#   bash models/training/run_all.sh [--skip-train] [--shared DIR]
#
# The iteration schedules below are the ones the shipped model was trained with (the poly-LR horizon was
# shortened during the session because the shared 2-core machine was slower than planned).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
SHARED="$(cd "$REPO/.." && pwd)/shared"
SKIP_TRAIN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-train) SKIP_TRAIN=1 ;;
    --shared) SHARED="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
cd "$HERE"
mkdir -p work checkpoints
export OMP_NUM_THREADS=1
SCHED_A="--iterations 5000 --schedule 158:1600,190:1000,280:2200"
SCHED_B="--iterations 3000 --schedule 160:1000,192:700,279:1300"

$PY prep.py --shared "$SHARED"
if [ "$SKIP_TRAIN" = 0 ]; then
  nice -n 10 $PY train.py --fold A $SCHED_A --shared "$SHARED" > work/train_A.log 2>&1 &
  PID_A=$!
  nice -n 10 $PY train.py --fold B $SCHED_B --shared "$SHARED" > work/train_B.log 2>&1 &
  PID_B=$!
  wait $PID_A $PID_B
fi
for F in A B; do
  nice -n 10 $PY evaluate.py --fold $F inner --shared "$SHARED"
  nice -n 10 $PY evaluate.py --fold $F test --shared "$SHARED"
done
nice -n 10 $PY longitudinal.py --fold A --shared "$SHARED"
$PY export.py --fold A
(. "$REPO/scripts/lib/node24.sh" && ensure_node24 "$REPO" && node check_onnx.cjs)
$PY figures.py
nice -n 10 $PY ../baseline-lga/lga.py --shared "$SHARED"
