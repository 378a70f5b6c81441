/**
 * Renders the sample report committed under docs/: docs/report-sample.pdf and docs/report-page1.png (page 1
 * at 110 dpi, via pdftoppm), from a real case — by default open_ms cross_sectional patient26 (committed
 * fixture) with its expert consensus lesion mask standing in for the model output, and a synthetic prior exam
 * (two new lesions, one enlarged, three exams on the trend plot). Every page says "SAMPLE".
 *
 *   node scripts/render-report-sample.ts [--mask lesion_mask.nii.gz] [--flair FLAIR.nii.gz]
 *        [--model-name NAME --model-version V --model-variant VARIANT --model-id ID] [--no-prior] [--out docs]
 *
 * With --mask (a model's output on the FLAIR grid) the lesion table is recomputed from it. Also prints how long
 * each DICOM object takes to build for this case (SEG, SR, PDF, overlay SC series).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDerivedObjects } from '../adapters/dicom/derived/pacs-publisher.ts';
import { renderReportPdf } from '../adapters/report/report-pdf.ts';
import { loadSampleCase, SAMPLE_MODEL } from '../adapters/report/testing/sample-case.ts';

const { values } = parseArgs({
  options: {
    mask: { type: 'string' },
    flair: { type: 'string' },
    'model-id': { type: 'string' },
    'model-name': { type: 'string' },
    'model-version': { type: 'string' },
    'model-variant': { type: 'string' },
    'no-prior': { type: 'boolean', default: false },
    out: { type: 'string', default: 'docs' },
  },
});

const model = {
  ...SAMPLE_MODEL,
  ...(values['model-id'] === undefined ? {} : { id: values['model-id'] }),
  ...(values['model-name'] === undefined ? {} : { name: values['model-name'] }),
  ...(values['model-version'] === undefined ? {} : { version: values['model-version'] }),
  ...(values['model-variant'] === undefined ? {} : { variant: values['model-variant'] }),
};
const t0 = performance.now();
const c = await loadSampleCase({
  withPrior: !values['no-prior'],
  model,
  ...(values.mask === undefined ? {} : { maskPath: resolve(values.mask) }),
  ...(values.flair === undefined ? {} : { flairPath: resolve(values.flair) }),
});
console.log(
  `case: ${c.summary.count} lesions, ${c.summary.totalVolumeMl.toFixed(2)} mL (loaded in ${Math.round(performance.now() - t0)} ms)`,
);
const prior = c.result.change;
const t1 = performance.now();
const report = await renderReportPdf({
  analysisId: c.context.analysisId,
  study: c.study,
  result: c.result,
  flair: c.flair,
  mask: c.mask,
  labels: c.labels,
  ...(c.changeMask === undefined ? {} : { changeMask: c.changeMask }),
  createdAt: c.context.createdAt,
  ...(prior === undefined
    ? {}
    : {
        history: [
          { date: '2024-02-20', totalVolumeMl: Math.max(0, prior.priorTotalVolumeMl * 0.82) },
          { date: prior.priorStudyDate ?? '2025-03-01', totalVolumeMl: prior.priorTotalVolumeMl },
        ],
      }),
  sample: true,
  ...(values.flair === undefined
    ? {
        imageCredit:
          'Sample images: open_ms_data patient 26 (Lesjak et al. 2017, CC-BY); ' +
          (values.mask === undefined ? 'expert consensus mask; ' : '') +
          'synthetic prior exam.',
      }
    : {}),
});
console.log(
  `report: ${report.layout.pages} page(s), ${report.pdf.length} bytes in ${Math.round(performance.now() - t1)} ms`,
);

const out = resolve(values.out);
const pdfPath = join(out, 'report-sample.pdf');
writeFileSync(pdfPath, report.pdf);
const tmp = mkdtempSync(join(tmpdir(), 'report-sample-'));
try {
  execFileSync('pdftoppm', ['-r', '110', '-f', '1', '-l', '1', '-png', pdfPath, join(tmp, 'page')]);
  renameSync(join(tmp, 'page-1.png'), join(out, 'report-page1.png'));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
for (const f of ['report-sample.pdf', 'report-page1.png'])
  console.log(`${join(values.out, f)}: ${Math.round(statSync(join(out, f)).size / 1024)} KiB`);

// build timings of the DICOM objects for this case
const built = buildDerivedObjects({
  analysisId: c.context.analysisId,
  study: c.study,
  flair: {
    volume: c.flair,
    series: c.study.series[0],
    slices: c.context.flairSlices,
    frameOfReferenceUid: c.context.flairSlices[0].frameOfReferenceUid ?? '',
  },
  mask: c.mask,
  ...(c.changeMask === undefined ? {} : { changeMask: c.changeMask }),
  result: c.result,
  reportPdf: readFileSync(pdfPath),
  createdAt: '2026-03-02T09:04:10.000Z',
});
const sizes = new Map<string, { n: number; bytes: number }>();
for (const o of built.objects) {
  const s = sizes.get(o.kind) ?? { n: 0, bytes: 0 };
  s.n++;
  s.bytes += o.bytes.length;
  sizes.set(o.kind, s);
}
for (const [kind, s] of sizes)
  console.log(
    `${kind}: ${s.n} instance(s), ${(s.bytes / 1024).toFixed(0)} KiB, built in ${built.timingsMs[kind as 'SEG'] ?? 0} ms`,
  );
