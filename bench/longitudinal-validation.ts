/**
 * `npm run bench -- longitudinal-validation [--model ID|none] [--no-mirror]`: the lesion-change validation on
 * the two longitudinal patients (test/fixtures/open_ms/longitudinal). For each patient:
 *  - "gt-derived": masks that are right by construction (the dataset's change lesions as new lesions at exam 2,
 *    6 stable + 4 enlarged synthetic spheres, see domain/longitudinal/synthetic.ts) → compareExams → the change
 *    mask carried into the common space with the dataset's ITK transforms → lesion-wise detection and Dice against
 *    the expected change and against gt.nii.gz; class counts; registration error against the dataset transforms;
 *  - "model" (when a default lesion model is installed, or --model ID): both exams segmented by segmentLesions,
 *    compareExams, the change mask in common space scored against gt.nii.gz.
 * Prints a table and one JSON line.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNifti } from '../adapters/nifti/nifti.ts';
import { readItkTransform } from '../adapters/itk/itk-transform.ts';
import { openModelRegistry } from '../adapters/models/fs-registry.ts';
import { OnnxInferenceEngine } from '../adapters/onnx/onnx-engine.ts';
import { applyAffine, invert, multiply, spacingOf, type Mat4, type Vec3 } from '../domain/model/geometry.ts';
import { createVolume, type Mask, type Volume } from '../domain/model/volume.ts';
import { boxCorners, meanDisplacement } from '../domain/preprocess/registration.ts';
import { gridOf, resampleMask } from '../domain/preprocess/resample.ts';
import { syntheticChangeScenario } from '../domain/longitudinal/synthetic.ts';
import { compareExams } from '../domain/use-cases/compare-exams.ts';
import { evaluateSegmentation, type SegmentationScores } from '../domain/evaluation/metrics.ts';
import { segmentLesions } from '../domain/use-cases/segment-lesions.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(ROOT, 'test', 'fixtures', 'open_ms', 'longitudinal');

const binary = (v: Volume): Mask =>
  createVolume(
    v.dims,
    v.affine,
    Uint8Array.from(v.data, (x) => (x >= 0.5 ? 1 : 0)),
  );

function inside(flair: Volume, commonToExam: Mat4): (c: Vec3, r: number) => boolean {
  const toVoxel = invert(flair.affine);
  const sp = spacingOf(flair.affine);
  return (c, r) => {
    const v = applyAffine(toVoxel, applyAffine(commonToExam, c));
    return [0, 1, 2].every((a) => v[a] - r / sp[a] - 1 >= 0 && v[a] + r / sp[a] + 1 <= flair.dims[a] - 1);
  };
}

interface Row {
  patient: string;
  mode: string;
  against: string;
  scores: SegmentationScores;
  counts: Record<string, number>;
  registrationErrorMm: number;
  seconds: number;
}

const f3 = (x: number | null): string => (x === null ? '–' : x.toFixed(3));

export async function run(argv: string[]): Promise<void> {
  const mi = argv.indexOf('--model');
  const modelArg = mi >= 0 ? argv[mi + 1] : undefined;
  const mirror = !argv.includes('--no-mirror');
  const rows: Row[] = [];
  const registry = await openModelRegistry({ roots: [join(ROOT, 'models')] });
  let modelId: string | undefined;
  if (modelArg !== 'none') {
    try {
      modelId = modelArg ?? registry.defaultFor('ms-lesion-segmentation').id;
    } catch {
      console.log('no lesion model installed: model rows skipped');
    }
  }
  const engine = modelId === undefined ? undefined : new OnnxInferenceEngine({});
  try {
    for (const patient of ['patient01', 'patient03']) {
      const at = (f: string): string => join(DATA, patient, f);
      const f1 = (await readNifti(at('study1_FLAIR.nii.gz'))).volume;
      const f2 = (await readNifti(at('study2_FLAIR.nii.gz'))).volume;
      const gt = binary((await readNifti(at('gt.nii.gz'))).volume);
      const brain = binary((await readNifti(at('brainmask_common_space.nii.gz'))).volume);
      const T1 = await readItkTransform(at('study1_FLAIR_to_common_space.txt'));
      const T2 = await readItkTransform(at('study2_FLAIR_to_common_space.txt'));
      const truth = multiply(T1, invert(T2));
      const corners = boxCorners(f2.affine, [0, 0, 0], f2.dims);
      const score = (
        mode: string,
        r: ReturnType<typeof compareExams>,
        seconds: number,
        refs: [string, Mask][],
      ): void => {
        const back = resampleMask(r.changeMask, gridOf(gt), { transform: T2 });
        const s = r.summary;
        for (const [against, ref] of refs)
          rows.push({
            patient,
            mode,
            against,
            scores: evaluateSegmentation(back, ref),
            counts: {
              new: s.newCount,
              enlarged: s.enlargedCount,
              stable: s.stableCount,
              shrunk: s.shrunkCount,
              disappeared: s.disappearedCount,
              merged: s.mergedCount,
              split: s.splitCount,
            },
            registrationErrorMm: meanDisplacement(r.transform, truth, corners),
            seconds,
          });
      };

      const sc = syntheticChangeScenario(gt, brain, {
        accept: (c, rad) => inside(f1, T1)(c, rad) && inside(f2, T2)(c, rad),
      });
      const m1 = resampleMask(sc.prior, gridOf(f1), { transform: invert(T1) });
      const m2 = resampleMask(sc.current, gridOf(f2), { transform: invert(T2) });
      let t = performance.now();
      const r = compareExams({ flair: f1, mask: m1 }, { flair: f2, mask: m2 });
      score('gt-derived', r, (performance.now() - t) / 1000, [
        ['expected', binary(sc.expectedChange)],
        ['gt.nii.gz', gt],
      ]);

      if (engine !== undefined && modelId !== undefined) {
        t = performance.now();
        const seg = async (flair: Volume, study: string): Promise<Mask> => {
          const t2 = (await readNifti(at(`${study}_T2W.nii.gz`))).volume;
          const out = await segmentLesions({ engine, models: registry }, { flair, t2 }, { modelId, mirror });
          return out.mask;
        };
        const p1 = await seg(f1, 'study1');
        const p2 = await seg(f2, 'study2');
        const rm = compareExams({ flair: f1, mask: p1 }, { flair: f2, mask: p2 });
        score(`model ${modelId}`, rm, (performance.now() - t) / 1000, [['gt.nii.gz', gt]]);
      }
    }
  } finally {
    await engine?.close();
  }
  console.log(
    '| patient | masks | against | Dice | lesion P | lesion R | lesion F1 | TP/ref | new | enlarged | stable | other | reg. error mm | s |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const x of rows) {
    const s = x.scores;
    const c = x.counts;
    console.log(
      `| ${x.patient} | ${x.mode} | ${x.against} | ${f3(s.dice)} | ${f3(s.precision)} | ${f3(s.recall)} | ${f3(s.f1)} | ${s.detectedRefLesions}/${s.refLesions} | ${c.new} | ${c.enlarged} | ${c.stable} | ${c.shrunk + c.disappeared + c.merged + c.split} | ${x.registrationErrorMm.toFixed(2)} | ${x.seconds.toFixed(1)} |`,
    );
  }
  console.log(JSON.stringify({ bench: 'longitudinal-validation', rows }));
}
