#!/usr/bin/env bash
# The demo, from a fresh clone: `bash scripts/demo.sh [out-dir]` (default out/demo).
#   1. Node.js 24 (scripts/lib/node24.sh, as .ci/run) and the npm dependencies (npm ci when node_modules is
#      missing or older than the lockfile; onnxruntime-node's CUDA download skipped);
#   2. the demo study: an MR DICOM study (FLAIR, T2, T1) built from the real MS case open_ms patient26
#      (CC-BY 4.0, Lesjak et al. 2017) into .tmp/demo-study — reused when it is already there;
#   3. `mslesion analyze` on it with the installed default model → report, masks, lesion table, FHIR bundle,
#      HL7 ORU, DICOM SEG / SR / PDF / overlay objects in the out dir;
#   4. where to look, report.pdf first.
# Idempotent: running it again rebuilds nothing that is up to date and replaces the previous results.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${1:-out/demo}"
STUDY="$ROOT/.tmp/demo-study"
say() { printf '\n== %s\n' "$*"; }

# shellcheck source=scripts/lib/node24.sh
. scripts/lib/node24.sh
ensure_node24 "$ROOT"
export ONNXRUNTIME_NODE_INSTALL=skip
# the service's JSON log lines (stderr) only for warnings and errors; MSLESION_LOG_LEVEL=info shows them all
export MSLESION_LOG_LEVEL="${MSLESION_LOG_LEVEL:-warn}"
if node_modules_stale "$ROOT"; then
  say "installing the npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

say "demo study (open_ms patient26 → DICOM)"
node scripts/build-demo-study.ts "$STUDY"

say "mslesion analyze $STUDY --out $OUT"
mkdir -p "$OUT"
# the previous demo run's state and folders (the command rewrites every file it exports)
rm -rf "$OUT/.mslesion" "$OUT/overlays" "$OUT/dicom"
node cli/mslesion.ts analyze "$STUDY" --out "$OUT"

if command -v pdftoppm >/dev/null 2>&1; then
  pdftoppm -png -r 80 -f 1 -l 1 -singlefile "$OUT/report.pdf" "$OUT/report-page1"
fi
say "where to look"
echo "  $OUT/report.pdf            the clinical report: open it first"
[ -f "$OUT/report-page1.png" ] && echo "  $OUT/report-page1.png      its first page as an image"
echo "  $OUT/overlays/             FLAIR slices with the lesions outlined (PNG)"
echo "  $OUT/lesions.csv           one row per lesion; lesion_mask.nii.gz the mask on the FLAIR grid"
echo "  $OUT/fhir-bundle.json      the FHIR R4 results bundle; oru.hl7 the HL7 v2 ORU^R01"
echo "  $OUT/dicom/                DICOM SEG, SR, Encapsulated PDF and overlay series for a PACS"
