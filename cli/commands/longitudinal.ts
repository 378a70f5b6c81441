/**
 * `mslesion longitudinal --prior-flair A.nii.gz [--prior-t2 …] [--prior-t1 …] [--prior-mask …]
 *                        --flair B.nii.gz [--t2 …] [--t1 …] [--mask …] --out DIR
 *                        [--transform itk.txt] [--model ID] [--models-dir DIR] [--no-mirror] [--json]`
 *
 * Change between a prior and a current exam (compareExams): an exam without a mask is segmented first with the
 * default lesion model (segmentLesions). Writes into DIR:
 *   change_mask.nii.gz  1 = new, 2 = enlarged, on the current FLAIR grid
 *   lesions.csv         one row per current lesion (its change class, prior ids, volumes, centroid, diameter,
 *                       location) and one per disappeared prior lesion
 *   summary.json        ChangeSummary (counts, volumes, registration quality, change table), lesion summary,
 *                       warnings; plus the masks it segmented (prior_mask.nii.gz / current_mask.nii.gz).
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { isDomainError } from '../../domain/errors.ts';
import type { InferenceEngine } from '../../domain/ports/inference.port.ts';
import type { ModelRegistry } from '../../domain/ports/model-registry.port.ts';
import { sameGrid, type Mask, type Volume } from '../../domain/model/volume.ts';
import { segmentLesions } from '../../domain/use-cases/segment-lesions.ts';
import { compareExams } from '../../domain/use-cases/compare-exams.ts';
import { analyzeLesions } from '../../domain/lesions/lesion-table.ts';
import { anatomyFromFlair, anatomyFromParcellation18, type Anatomy } from '../../domain/lesions/anatomy.ts';
import { extractBrain, parcellateBrain } from '../../domain/preprocess/brain-extraction.ts';
import { gridOf, resampleLabels, resampleMask } from '../../domain/preprocess/resample.ts';
import { registerImages } from '../../domain/preprocess/registration.ts';
import type { ModelManifest } from '../../domain/model/manifest.ts';
import type { ModelArtifactRef } from '../../domain/ports/inference.port.ts';
import { writeNifti } from '../../adapters/nifti/nifti.ts';
import { readItkTransform } from '../../adapters/itk/itk-transform.ts';
import { csvRow, ensureDir, readBinaryMask, readVolume, writeText } from '../wiring/masks.ts';
import { failed, openCommandEngine, openCommandModels, usage, type CommandIo } from '../wiring/command.ts';

const HELP = `usage: mslesion longitudinal --prior-flair A.nii.gz [--prior-t2 F] [--prior-t1 F] [--prior-mask M]
                            --flair B.nii.gz [--t2 F] [--t1 F] [--mask M] --out DIR [options]
options:
  --transform F      ITK transform current → prior (points of the current exam to the prior): skips registration
  --model ID         lesion model for exams without a mask (default: the installed default)
  --models-dir DIR   model folder (default: MSLESION_MODELS_DIR or the repository's models/)
  --no-mirror        no test-time mirroring when segmenting (faster)
  --json             print summary.json to stdout
writes DIR/change_mask.nii.gz (1 new, 2 enlarged), DIR/lesions.csv, DIR/summary.json`;

interface Exam {
  flair: Volume;
  t2?: Volume;
  t1?: Volume;
  mask?: Mask;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'prior-flair': { type: 'string' },
        'prior-t2': { type: 'string' },
        'prior-t1': { type: 'string' },
        'prior-mask': { type: 'string' },
        flair: { type: 'string' },
        t2: { type: 'string' },
        t1: { type: 'string' },
        mask: { type: 'string' },
        out: { type: 'string' },
        transform: { type: 'string' },
        model: { type: 'string' },
        'models-dir': { type: 'string' },
        'no-mirror': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    if (values['prior-flair'] === undefined || values.flair === undefined)
      throw usage('--prior-flair and --flair are required');
    if (values.out === undefined) throw usage('--out is required');
  } catch (e) {
    io.err(`mslesion longitudinal: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }

  let engine: InferenceEngine | undefined;
  let registry: ModelRegistry | undefined;
  const infra = async (): Promise<{ engine: InferenceEngine; models: ModelRegistry }> => {
    registry ??= await openCommandModels('longitudinal', io, values['models-dir']);
    engine ??= await openCommandEngine('longitudinal', io);
    return { engine, models: registry };
  };

  try {
    const out = values.out;
    const load = async (flair: string, t2?: string, t1?: string, mask?: string): Promise<Exam> => ({
      flair: await readVolume(flair),
      ...(t2 === undefined ? {} : { t2: await readVolume(t2) }),
      ...(t1 === undefined ? {} : { t1: await readVolume(t1) }),
      ...(mask === undefined ? {} : { mask: await readBinaryMask(mask) }),
    });
    io.progress('reading images');
    const prior = await load(
      values['prior-flair'],
      values['prior-t2'],
      values['prior-t1'],
      values['prior-mask'],
    );
    const current = await load(values.flair, values.t2, values.t1, values.mask);
    await ensureDir(out);
    const warnings: string[] = [];
    const brains: Partial<Record<'prior' | 'current', Mask>> = {};

    const maskOf = async (e: Exam, which: 'prior' | 'current'): Promise<Mask> => {
      if (e.mask !== undefined) {
        // a mask on another grid than its FLAIR is brought onto it through the headers
        return sameGrid(e.mask, e.flair) ? e.mask : resampleMask(e.mask, gridOf(e.flair));
      }
      const deps = await infra();
      const r = await segmentLesions(
        deps,
        {
          flair: e.flair,
          ...(e.t2 === undefined ? {} : { t2: e.t2 }),
          ...(e.t1 === undefined ? {} : { t1: e.t1 }),
        },
        {
          ...(values.model === undefined ? {} : { modelId: values.model }),
          mirror: !values['no-mirror'],
          progress: (f, step) => {
            io.progress(`${which}: ${(100 * f).toFixed(0).padStart(3)} % ${step}`);
          },
        },
      );
      for (const w of r.warnings) warnings.push(`${which}: ${w}`);
      brains[which] = r.brainMask;
      await writeNifti(
        join(out, `${which}_mask.nii.gz`),
        r.mask,
        `lesions ${r.model.id} ${r.model.variant}`.slice(0, 79),
      );
      return r.mask;
    };
    const priorMask = await maskOf(prior, 'prior');
    const currentMask = await maskOf(current, 'current');

    io.progress('registering and matching');
    const transform = values.transform === undefined ? undefined : await readItkTransform(values.transform);
    const change = compareExams(
      { flair: prior.flair, mask: priorMask },
      { flair: current.flair, mask: currentMask },
      transform === undefined ? {} : { transform },
    );
    warnings.push(...change.warnings);

    // location anatomy for the current lesion table: the T1 parcellation when a T1 and the anatomy model exist
    let anatomy: Anatomy | undefined;
    if (current.t1 !== undefined) {
      try {
        const deps = await infra();
        const t1 = current.t1;
        const model = (id: string): { manifest: ModelManifest; artifact: ModelArtifactRef } => ({
          manifest: deps.models.get(id),
          artifact: deps.models.artifact(id, 'any'),
        });
        // brainchop's failsafe mode: parcellate the brain-extracted T1, then carry the labels onto the FLAIR
        // through a rigid T1 → FLAIR registration (series move between acquisitions)
        io.progress('anatomy: T1 brain extraction');
        const t1Brain = (await extractBrain(t1, deps.engine, model('brain-mindgrab'))).mask;
        io.progress('anatomy: T1 parcellation');
        const p = await parcellateBrain(t1, deps.engine, model('brain-anatomy18'), { brainMask: t1Brain });
        io.progress('anatomy: T1 → FLAIR registration');
        const reg = registerImages(current.flair, t1, { initialization: 'geometry' });
        const onFlair = resampleLabels(p.labels, gridOf(current.flair), { transform: reg.matrix });
        anatomy = anatomyFromParcellation18(onFlair, current.flair);
      } catch (e) {
        if (!isDomainError(e)) throw e;
        warnings.push(`anatomy: T1 parcellation unavailable (${e.code}); FLAIR heuristic used`);
      }
    }
    if (anatomy === undefined) {
      // FLAIR heuristic: needs a brain mask on raw scans — the segmentation's, else the brain-extraction model
      let brainMask = brains.current;
      if (brainMask === undefined) {
        try {
          const deps = await infra();
          io.progress('brain extraction');
          brainMask = (
            await extractBrain(current.flair, deps.engine, {
              manifest: deps.models.get('brain-mindgrab'),
              artifact: deps.models.artifact('brain-mindgrab', 'any'),
            })
          ).mask;
        } catch (e) {
          if (!isDomainError(e)) throw e;
          warnings.push(`anatomy: brain extraction unavailable (${e.code}); FLAIR thresholds used`);
        }
      }
      anatomy = anatomyFromFlair(current.flair, brainMask === undefined ? {} : { brainMask });
    }
    const table = analyzeLesions(currentMask, current.flair, anatomy);

    await writeNifti(join(out, 'change_mask.nii.gz'), change.changeMask, 'lesion change: 1 new, 2 enlarged');
    const classOf = new Map<number, { cls: string; priors: readonly number[]; priorMl: number }>();
    for (const c of change.summary.changes)
      for (const id of c.currentIds)
        classOf.set(id, { cls: c.class, priors: c.priorIds, priorMl: c.priorVolumeMl });
    const header =
      'current_id,class,prior_ids,volume_ml,prior_group_volume_ml,voxels,centroid_x_mm,centroid_y_mm,centroid_z_mm,longest_diameter_mm,mean_flair,location';
    const rows = table.summary.lesions.map((l) => {
      const c = classOf.get(l.id);
      return csvRow([
        l.id,
        c?.cls ?? '',
        c?.priors.join(' ') ?? '',
        l.volumeMl,
        c?.priorMl ?? null,
        l.voxelCount,
        l.centroid[0],
        l.centroid[1],
        l.centroid[2],
        l.longestDiameterMm,
        l.meanFlair,
        l.location,
      ]);
    });
    for (const c of change.summary.changes)
      if (c.class === 'disappeared')
        rows.push(
          csvRow([
            '',
            'disappeared',
            c.priorIds.join(' '),
            0,
            c.priorVolumeMl,
            0,
            null,
            null,
            null,
            null,
            null,
            '',
          ]),
        );
    await writeText(join(out, 'lesions.csv'), [header, ...rows].join('\n'));
    const summary = {
      change: change.summary,
      lesions: { ...table.summary, lesions: undefined, anatomy: anatomy.source, anatomyNotes: anatomy.notes },
      warnings,
    };
    await writeText(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
    const s = change.summary;
    if (values.json) io.out(JSON.stringify(summary, null, 2));
    else {
      io.out(
        `registration  ${s.registration.method}; ${s.registration.metric} ${s.registration.value.toFixed(3)}, NCC ${s.registration.ncc?.toFixed(3) ?? 'n/a'}`,
      );
      io.out(
        `lesions       new ${s.newCount}, enlarged ${s.enlargedCount}, disappeared ${s.disappearedCount}, shrunk ${s.shrunkCount}, stable ${s.stableCount}, merged ${s.mergedCount}, split ${s.splitCount}`,
      );
      io.out(
        `volume        prior ${s.priorTotalVolumeMl.toFixed(3)} mL, change ${s.totalVolumeChangeMl >= 0 ? '+' : ''}${s.totalVolumeChangeMl.toFixed(3)} mL${s.totalVolumeChangePercent === null ? '' : ` (${s.totalVolumeChangePercent.toFixed(1)} %)`}`,
      );
      for (const w of warnings) io.out(`warning       ${w}`);
      io.out(`wrote         ${join(out, 'change_mask.nii.gz')}, lesions.csv, summary.json`);
    }
    return 0;
  } catch (e) {
    return failed('longitudinal', io, e);
  } finally {
    await engine?.close();
  }
}
