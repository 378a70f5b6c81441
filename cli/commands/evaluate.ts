/**
 * `mslesion evaluate --pred P.nii.gz --ref R.nii.gz [--json] [--pred-transform itk.txt]
 *                    [--connectivity 6|18|26] [--min-volume mm3]`
 * `mslesion evaluate --batch cases.csv --out dir [--connectivity …] [--min-volume …]`
 *
 * Voxel Dice, lesion-wise precision/recall/F1 (MSSEG rules, domain/evaluation/metrics.ts), volume errors and
 * lesion counts. Batch mode reads a CSV (columns case, site, pred, ref[, pred_transform]; paths relative to the
 * CSV) and writes cases.csv, by-site.md, summary.json and bland-altman.png into --out.
 */
import { parseArgs } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import {
  evaluateSegmentation,
  MSSEG_PARAMS,
  type DetectionParams,
  type SegmentationScores,
} from '../../domain/evaluation/metrics.ts';
import {
  blandAltman,
  parseCasesCsv,
  stratifiedTableMarkdown,
  stratifyBySite,
  type CaseResult,
} from '../../domain/evaluation/batch.ts';
import { isConnectivity } from '../../domain/lesions/connected-components.ts';
import { blandAltmanPng } from '../../adapters/plot/bland-altman.ts';
import { csvRow, ensureDir, predictionOnReference, readBinaryMask, writeText } from '../wiring/masks.ts';
import { failed, usage, type CommandIo } from '../wiring/command.ts';

const HELP = `usage: mslesion evaluate --pred P.nii.gz --ref R.nii.gz [--json] [--pred-transform itk.txt]
       mslesion evaluate --batch cases.csv --out DIR
options:
  --pred-transform F  ITK transform (reference → prediction points) to bring the prediction onto the reference
  --connectivity N    lesion connectivity for the lesion-wise scores: 6 (default, as MSSEG/anima), 18, 26
  --min-volume V      lesions must be larger than V mm³ (default 3)
  --json              print the scores as JSON
batch CSV columns: case, site (or scanner), pred, ref, [pred_transform]; paths relative to the CSV`;

function params(values: { connectivity?: string; 'min-volume'?: string }): Partial<DetectionParams> {
  const out: { connectivity?: DetectionParams['connectivity']; minVolumeMm3?: number } = {};
  if (values.connectivity !== undefined) {
    const c = Number(values.connectivity);
    if (!isConnectivity(c)) throw usage('--connectivity must be 6, 18 or 26');
    out.connectivity = c;
  }
  if (values['min-volume'] !== undefined) {
    const v = Number(values['min-volume']);
    if (!Number.isFinite(v) || v < 0) throw usage('--min-volume must be a number ≥ 0');
    out.minVolumeMm3 = v;
  }
  return out;
}

const f = (x: number | null, d = 3): string => (x === null ? 'n/a' : x.toFixed(d));

function describe(s: SegmentationScores): string[] {
  return [
    `Dice                  ${f(s.dice)}`,
    `lesion-wise precision ${f(s.precision)}  (${s.truePositivePredLesions} of ${s.predLesions} predicted lesions true)`,
    `lesion-wise recall    ${f(s.recall)}  (${s.detectedRefLesions} of ${s.refLesions} reference lesions detected)`,
    `lesion-wise F1        ${f(s.f1)}`,
    `false positives       ${s.falsePositiveLesions}, false negatives ${s.falseNegativeLesions}`,
    `volume                predicted ${s.predVolumeMl.toFixed(3)} mL, reference ${s.refVolumeMl.toFixed(3)} mL`,
    `volume error          ${s.volumeErrorMl >= 0 ? '+' : ''}${s.volumeErrorMl.toFixed(3)} mL (${s.relativeVolumeErrorPercent === null ? 'n/a' : `${s.relativeVolumeErrorPercent >= 0 ? '+' : ''}${s.relativeVolumeErrorPercent.toFixed(1)} %`})`,
  ];
}

async function evaluateFiles(
  predPath: string,
  refPath: string,
  transform: string | undefined,
  p: Partial<DetectionParams>,
): Promise<{ scores: SegmentationScores; note?: string }> {
  const [pred, ref] = await Promise.all([readBinaryMask(predPath), readBinaryMask(refPath)]);
  const onRef = await predictionOnReference(pred, ref, transform);
  return {
    scores: evaluateSegmentation(onRef.mask, ref, p),
    ...(onRef.note === undefined ? {} : { note: onRef.note }),
  };
}

async function runBatch(
  csvPath: string,
  outDir: string,
  p: Partial<DetectionParams>,
  io: CommandIo,
): Promise<number> {
  const text = await readFile(csvPath, 'utf8').catch((e: unknown) => {
    throw new DomainError('EVAL.NOT_FOUND', `cannot read ${csvPath}`, { issueType: 'not-found', cause: e });
  });
  const cases = parseCasesCsv(text);
  const base = dirname(resolve(csvPath));
  const at = (x: string): string => (isAbsolute(x) ? x : join(base, x));
  const results: CaseResult[] = [];
  const failures: { id: string; code: string; message: string }[] = [];
  for (const [n, c] of cases.entries()) {
    io.progress(`evaluate ${n + 1}/${cases.length}: ${c.id}`);
    try {
      const r = await evaluateFiles(
        at(c.pred),
        at(c.ref),
        c.predTransform === undefined ? undefined : at(c.predTransform),
        p,
      );
      results.push({ id: c.id, site: c.site, scores: r.scores });
    } catch (e) {
      if (!isDomainError(e)) throw e;
      failures.push({ id: c.id, code: e.code, message: e.message });
      io.err(`${c.id}: ${e.code}: ${e.message}`);
    }
  }
  if (results.length === 0)
    throw new DomainError('EVAL.NO_CASES', 'no case could be evaluated', { issueType: 'processing' });
  await ensureDir(outDir);
  const cols = [
    'case',
    'site',
    'dice',
    'precision',
    'recall',
    'f1',
    'ref_lesions',
    'pred_lesions',
    'detected_ref_lesions',
    'true_positive_pred_lesions',
    'ref_volume_ml',
    'pred_volume_ml',
    'volume_error_ml',
    'relative_volume_error_percent',
  ];
  const rows = results.map((r) => {
    const s = r.scores;
    return csvRow([
      r.id,
      r.site,
      s.dice,
      s.precision,
      s.recall,
      s.f1,
      s.refLesions,
      s.predLesions,
      s.detectedRefLesions,
      s.truePositivePredLesions,
      s.refVolumeMl,
      s.predVolumeMl,
      s.volumeErrorMl,
      s.relativeVolumeErrorPercent,
    ]);
  });
  await writeText(join(outDir, 'cases.csv'), [cols.join(','), ...rows].join('\n'));
  const table = stratifyBySite(results);
  const md = stratifiedTableMarkdown(table);
  await writeText(join(outDir, 'by-site.md'), md);
  const ba = blandAltman(results);
  await writeFile(join(outDir, 'bland-altman.png'), blandAltmanPng(ba));
  await writeText(
    join(outDir, 'summary.json'),
    JSON.stringify({ params: { ...MSSEG_PARAMS, ...p }, strata: table, blandAltman: ba, failures }, null, 2),
  );
  io.out(md);
  io.out(
    `Bland–Altman: bias ${ba.bias.toFixed(3)} mL, limits of agreement ${ba.lowerLimit.toFixed(3)} … ${ba.upperLimit.toFixed(3)} mL (n = ${ba.n})`,
  );
  io.out(`wrote ${join(outDir, 'cases.csv')}, by-site.md, summary.json, bland-altman.png`);
  return failures.length > 0 ? 1 : 0;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        pred: { type: 'string' },
        ref: { type: 'string' },
        json: { type: 'boolean' },
        'pred-transform': { type: 'string' },
        batch: { type: 'string' },
        out: { type: 'string' },
        connectivity: { type: 'string' },
        'min-volume': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    io.err(`mslesion evaluate: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }
  if (values.help === true) {
    io.out(HELP);
    return 0;
  }
  try {
    const p = params(values);
    if (values.batch !== undefined) {
      if (values.out === undefined) throw usage('--batch needs --out DIR');
      return await runBatch(values.batch, values.out, p, io);
    }
    if (values.pred === undefined || values.ref === undefined) throw usage('--pred and --ref are required');
    const r = await evaluateFiles(values.pred, values.ref, values['pred-transform'], p);
    if (values.json === true)
      io.out(
        JSON.stringify(
          {
            params: { ...MSSEG_PARAMS, ...p },
            ...r.scores,
            ...(r.note === undefined ? {} : { note: r.note }),
          },
          null,
          2,
        ),
      );
    else {
      if (r.note !== undefined) io.err(`note: ${r.note}`);
      for (const line of describe(r.scores)) io.out(line);
    }
    return 0;
  } catch (e) {
    return failed('evaluate', io, e);
  }
}
