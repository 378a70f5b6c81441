import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDomainError } from '../errors.ts';
import {
  blandAltman,
  parseCasesCsv,
  stat,
  stratifiedTableMarkdown,
  stratifyBySite,
  type CaseResult,
} from './batch.ts';
import type { SegmentationScores } from './metrics.ts';

test('cases CSV: header names, quotes, defaults and errors', () => {
  const cases = parseCasesCsv(
    '\uFEFFcase,site,pred,ref\n# comment\n\na,siteA,p/a.nii.gz,r/a.nii.gz\n"b, 2",siteB,"p ""q"".nii",r/b.nii\n',
  );
  assert.deepEqual(cases, [
    { id: 'a', site: 'siteA', pred: 'p/a.nii.gz', ref: 'r/a.nii.gz' },
    { id: 'b, 2', site: 'siteB', pred: 'p "q".nii', ref: 'r/b.nii' },
  ]);
  const minimal = parseCasesCsv('ref,pred,pred_transform\nr.nii,p.nii,t.txt\n');
  assert.deepEqual(minimal, [
    { id: 'case1', site: 'all', pred: 'p.nii', ref: 'r.nii', predTransform: 't.txt' },
  ]);
  const bad = (text: string, re: RegExp): void => {
    assert.throws(
      () => parseCasesCsv(text),
      (e: unknown) => isDomainError(e) && e.code === 'EVAL.BAD_CSV' && re.test(e.message),
    );
  };
  bad('case,pred\na,b\n', /no "ref"/);
  bad('pred,ref\na\n', /line 2: 1 fields/);
  bad('case,pred,ref\nx,a,b\nx,c,d\n', /duplicate/);
  bad('pred,ref\n', /no cases/);
  bad('pred,ref\n"a,b\n', /unterminated/);
});

function scores(
  pred: number,
  ref: number,
  f1: number,
  counts: [number, number, number, number],
): SegmentationScores {
  const [refLesions, predLesions, det, tp] = counts;
  return {
    dice: f1,
    predVolumeMl: pred,
    refVolumeMl: ref,
    volumeErrorMl: pred - ref,
    absVolumeErrorMl: Math.abs(pred - ref),
    relativeVolumeErrorPercent: ref === 0 ? null : (100 * (pred - ref)) / ref,
    refLesions,
    predLesions,
    detectedRefLesions: det,
    truePositivePredLesions: tp,
    falsePositiveLesions: predLesions - tp,
    falseNegativeLesions: refLesions - det,
    precision: predLesions === 0 ? null : tp / predLesions,
    recall: refLesions === 0 ? null : det / refLesions,
    f1,
  };
}

test('stratified tables and Bland–Altman statistics, worked by hand', () => {
  const results: CaseResult[] = [
    { id: 'a', site: 'S1', scores: scores(10, 8, 0.5, [4, 4, 2, 2]) }, // diff +2, mean 9
    { id: 'b', site: 'S1', scores: scores(4, 6, 0.7, [6, 2, 3, 2]) }, // diff −2, mean 5
    { id: 'c', site: 'S2', scores: scores(3, 3, 0.9, [1, 1, 1, 1]) }, // diff 0, mean 3
  ];
  const t = stratifyBySite(results);
  assert.deepEqual(
    t.sites.map((s) => s.site),
    ['S1', 'S2'],
  );
  const s1 = t.sites[0];
  assert.equal(s1.cases, 2);
  assert.ok(Math.abs((s1.f1.mean ?? 0) - 0.6) < 1e-12);
  // sample SD of {0.5, 0.7} = √(((−0.1)² + 0.1²) / 1) = 0.1414
  assert.ok(Math.abs((s1.f1.sd ?? 0) - Math.SQRT2 / 10) < 1e-12);
  // pooled: 5 of 10 reference lesions detected, 4 of 6 predictions true → P 0.667, R 0.5, F1 = 2·(2/3)(1/2)/(7/6)
  assert.equal(s1.detectedRefLesions, 5);
  assert.ok(Math.abs((s1.pooledRecall ?? 0) - 0.5) < 1e-12);
  assert.ok(Math.abs((s1.pooledF1 ?? 0) - 4 / 7) < 1e-12);
  assert.equal(t.overall.cases, 3);
  assert.equal(t.overall.volumeErrorMl.median, 0);
  const ba = blandAltman(results);
  // differences +2, −2, 0: bias 0, SD = √((4 + 4 + 0) / 2) = 2, limits ±3.92
  assert.equal(ba.bias, 0);
  assert.equal(ba.sd, 2);
  assert.ok(Math.abs(ba.upperLimit - 3.92) < 1e-12 && Math.abs(ba.lowerLimit + 3.92) < 1e-12);
  assert.deepEqual(
    ba.points.map((p) => [p.mean, p.diff]),
    [
      [9, 2],
      [5, -2],
      [3, 0],
    ],
  );
  const md = stratifiedTableMarkdown(t);
  assert.match(md, /\| S1 \| 2 \| 0\.600 ± 0\.141 \|/);
  assert.match(md, /\| all sites \| 3 \|/);
  assert.deepEqual(stat([null, 1, 3]), { n: 2, mean: 2, sd: Math.SQRT2, median: 2 });
});
