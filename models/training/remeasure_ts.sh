#!/usr/bin/env bash
# Re-measures the held-out cases through the service's own code path: `mslesion segment` (TypeScript engine,
# onnxruntime-node, the manifest's preprocessing and sliding window) and `mslesion evaluate` (TypeScript metrics).
# Fold A = the shipped model folder on patient26; fold B = the fold-B export (work/models_B) on patient07.
#   [FOLDS="A B"] bash models/training/remeasure_ts.sh [--shared DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHARED="$(cd "$REPO/.." && pwd)/shared"
[ "${1:-}" = "--shared" ] && SHARED="$2"
. "$REPO/scripts/lib/node24.sh" && ensure_node24 "$REPO"
CS="$SHARED/data/open_ms/cross_sectional"
OUT="$HERE/work/ts"
mkdir -p "$OUT"
cd "$REPO"
if [[ " ${FOLDS:-A B} " == *" B "* ]] && [ ! -f "$HERE/work/models_B/mslesion-unet3d-v1-foldb/manifest.json" ]; then
  /usr/bin/python3 "$HERE/export.py" --fold B --out-dir "$HERE/work/models_B/mslesion-unet3d-v1-foldb" --id mslesion-unet3d-v1-foldb
fi
run() { # fold case variant models-dir model-id channels...
  local fold=$1 case=$2 variant=$3 dir=$4 id=$5
  shift 5
  local args=(--flair "$CS/$case/FLAIR.nii.gz")
  for c in "$@"; do args+=("--$c" "$CS/$case/${c^^}.nii.gz"); done
  local t0=$(date +%s)
  nice -n 10 node cli/mslesion.ts segment "${args[@]}" --out "$OUT/${fold}_${case}_${variant}.nii.gz" \
    --models-dir "$dir" --model "$id" --threads 1 --json > "$OUT/${fold}_${case}_${variant}.segment.json"
  local t1=$(date +%s)
  node cli/mslesion.ts evaluate --pred "$OUT/${fold}_${case}_${variant}.nii.gz" --ref "$CS/$case/lesion_mask.nii.gz" \
    --json > "$OUT/${fold}_${case}_${variant}.eval.json"
  echo "$fold $case $variant $((t1 - t0))s $(node -e "const r=require('$OUT/${fold}_${case}_${variant}.eval.json');console.log(['dice','precision','recall','f1','relativeVolumeErrorPercent'].map(k=>k+'='+r[k].toFixed(3)).join(' '))")"
}
for F in ${FOLDS:-A B}; do
if [ "$F" = A ]; then
run A patient26 flair-t2-t1 "$REPO/models" mslesion-unet3d-v1 t2 t1
run A patient26 flair-t2 "$REPO/models" mslesion-unet3d-v1 t2
run A patient26 flair "$REPO/models" mslesion-unet3d-v1
else
run B patient07 flair-t2-t1 "$HERE/work/models_B" mslesion-unet3d-v1-foldb t2 t1
run B patient07 flair-t2 "$HERE/work/models_B" mslesion-unet3d-v1-foldb t2
run B patient07 flair "$HERE/work/models_B" mslesion-unet3d-v1-foldb
fi
done
