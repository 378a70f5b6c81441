/**
 * The whole analysis of one study, as an explicit sequence of typed steps (what a POSTed analysis, a FHIR
 * ServiceRequest, an HL7 order and `mslesion analyze` all run):
 *
 *   1. load      pull the study, classify its series, build FLAIR (+T2, T1) volumes   (load-study.ts)
 *   2. segment   channel variant → T2/T1 onto FLAIR → brain mask → sliding window      (segment-lesions.ts)
 *   3. anatomy   per-patient regions for lesion location (parcellation model, else FLAIR rule)
 *   4. measure   lesion table: count, volumes, locations                                (lesions/lesion-table.ts)
 *   5. compare   with a prior study: load + segment it, register, match lesions         (compare-exams.ts)
 *   6. artifacts mask / labels / change mask (NIfTI), registration.json, lesions.csv, report.pdf
 *   7. publish   SEG + SR + Encapsulated PDF + overlay series back to the PACS            (PacsPublisher)
 *
 * Every step reports progress; the EHR delivery (FHIR bundle, ORU) follows a succeeded run (compose.ts).
 */
import { DomainError } from '../errors.ts';
import type {
  AnalysisResult,
  ChangeSummary,
  LesionSummary,
  ModelUsed,
  SeriesRef,
} from '../model/analysis.ts';
import { LESION_LOCATIONS } from '../model/analysis.ts';
import { createVolume, type Mask, type Volume } from '../model/volume.ts';
import type { PacsPublisher } from '../ports/pacs-publisher.port.ts';
import type { ExamLoad, ReportRenderer } from '../ports/report-renderer.port.ts';
import type { VolumeCodec } from '../ports/volume-codec.port.ts';
import { anatomyFromFlair, anatomyFromParcellation18, type Anatomy } from '../lesions/anatomy.ts';
import { analyzeLesions } from '../lesions/lesion-table.ts';
import { parcellateBrain, type BrainExtractionOptions } from '../preprocess/brain-extraction.ts';
import { compareExams, type ChangeResult } from './compare-exams.ts';
import { loadInputsWithProgress } from './ingest-study.ts';
import { loadStudyInputs, type LoadStudyDeps, type LoadedVolume, type StudyInputs } from './load-study.ts';
import type { AnalysisPipeline, PipelineContext } from './run-analysis.ts';
import { segmentLesions, type SegmentationOutput, type SegmentLesionsDeps } from './segment-lesions.ts';

export const PARCELLATION_TASK = 'brain-parcellation';

export interface AnalyzeStudySettings {
  /** Test-time mirroring (default true). */
  readonly mirror?: boolean;
  /** Brain extraction of raw (not skull-stripped) inputs, e.g. { spacing: 1.5 }. */
  readonly brainExtraction?: BrainExtractionOptions;
  /**
   * Anatomy for lesion location: 'parcellation' runs the registry's brain-parcellation model on the FLAIR
   * (brainchop 18 labels) and falls back to the FLAIR rule when no such model is installed; 'flair' uses the
   * FLAIR rule only (fast). Default 'parcellation'.
   */
  readonly anatomy?: 'parcellation' | 'flair';
  /** Voxel spacing (mm) at which the parcellation model runs (default 1: its training resolution; at 1.5 mm
   * it no longer finds the ventricles). */
  readonly parcellationSpacing?: number;
}

export interface AnalyzeStudyDeps {
  readonly load: LoadStudyDeps;
  readonly segment: SegmentLesionsDeps;
  readonly codec: VolumeCodec;
  readonly now: () => Date;
  readonly report?: ReportRenderer;
  readonly publisher?: PacsPublisher;
  /** The patient's earlier exams (their lesion loads) for the report's trend plot. */
  readonly history?: (patientId: string, excludeAnalysisId: string) => Promise<readonly ExamLoad[]>;
  readonly settings?: AnalyzeStudySettings;
}

/** Progress ranges of the steps (fractions of the whole run). */
const SPAN = {
  load: [0, 0.15],
  segment: [0.15, 0.55],
  anatomy: [0.55, 0.62],
  priorLoad: [0.62, 0.67],
  priorSegment: [0.67, 0.85],
  compare: [0.85, 0.9],
  artifacts: [0.9, 0.94],
  publish: [0.94, 0.99],
} as const;

type Span = readonly [number, number];

function seriesRef(v: LoadedVolume): SeriesRef {
  return {
    seriesInstanceUid: v.series.seriesInstanceUid,
    instances: v.series.numberOfInstances,
    ...(v.series.attributes.seriesDescription === undefined
      ? {}
      : { description: v.series.attributes.seriesDescription }),
  };
}

/** Progress callback for a step, mapped into its span; writes are chained so they land in order. */
class StepProgress {
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private readonly ctx: PipelineContext;

  constructor(ctx: PipelineContext) {
    this.ctx = ctx;
  }

  report(span: Span, fraction: number, step: string): void {
    const f = span[0] + (span[1] - span[0]) * Math.min(1, Math.max(0, fraction));
    this.chain = this.chain
      .then(() => this.ctx.progress(f, step))
      .catch((e: unknown) => {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
      });
  }

  forSpan(span: Span, prefix: string): (fraction: number, step: string) => void {
    return (fraction, step) => {
      this.report(span, fraction, `${prefix}: ${step}`);
    };
  }

  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw new DomainError('ANALYSIS.CANCELLED', 'the analysis run was stopped', { issueType: 'transient' });
}

async function buildAnatomy(
  deps: AnalyzeStudyDeps,
  flair: Volume,
  seg: SegmentationOutput,
  signal: AbortSignal,
): Promise<{ anatomy: Anatomy; warnings: string[] }> {
  const warnings: string[] = [];
  const mode = deps.settings?.anatomy ?? 'parcellation';
  if (mode === 'parcellation') {
    const model = deps.segment.models.list().find((m) => m.task === PARCELLATION_TASK);
    if (model === undefined)
      warnings.push('no brain-parcellation model installed: lesion location from the FLAIR rule');
    else {
      checkAborted(signal);
      const variant = model.variants[0];
      const artifact = deps.segment.models.artifact(model.id, variant.id);
      const parc = await parcellateBrain(
        flair,
        deps.segment.engine,
        { manifest: model, artifact },
        {
          brainMask: seg.brainMask,
          spacing: deps.settings?.parcellationSpacing ?? 1,
        },
      );
      return { anatomy: anatomyFromParcellation18(parc.labels, flair), warnings };
    }
  }
  return { anatomy: anatomyFromFlair(flair, { brainMask: seg.brainMask }), warnings };
}

/** lesions.csv: one row per lesion of the current exam (ids as in the label map and the report). */
export function lesionsCsv(summary: LesionSummary, change?: ChangeResult): string {
  const changeOf = new Map<number, string>();
  for (const c of change?.summary.changes ?? []) for (const id of c.currentIds) changeOf.set(id, c.class);
  const header = [
    'id',
    'voxels',
    'volume_ml',
    'centroid_x_mm',
    'centroid_y_mm',
    'centroid_z_mm',
    'longest_diameter_mm',
    'mean_flair',
    'location',
    ...(change === undefined ? [] : ['change']),
  ];
  const rows = summary.lesions.map((l) =>
    [
      l.id,
      l.voxelCount,
      l.volumeMl.toFixed(4),
      l.centroid[0].toFixed(2),
      l.centroid[1].toFixed(2),
      l.centroid[2].toFixed(2),
      l.longestDiameterMm.toFixed(2),
      l.meanFlair.toFixed(3),
      l.location,
      ...(change === undefined ? [] : [changeOf.get(l.id) ?? 'stable']),
    ].join(','),
  );
  return [header.join(','), ...rows].join('\n') + '\n';
}

function labelsAsInt16(labels: Volume<Int32Array>): Volume<Int16Array> {
  const out = new Int16Array(labels.data.length);
  for (let p = 0; p < out.length; p++) out[p] = Math.min(32767, labels.data[p]);
  return createVolume(labels.dims, labels.affine, out);
}

/** New or enlarging lesions (change mask labels 1 and 2) as one binary mask. */
function newOrEnlarging(change: Mask): Mask {
  const d = new Uint8Array(change.data.length);
  for (let p = 0; p < d.length; p++) d[p] = change.data[p] !== 0 ? 1 : 0;
  return createVolume(change.dims, change.affine, d);
}

/** Sum of the change classes in the summary, for a one-line log of the result. */
export function describeResult(result: AnalysisResult): string {
  const l = result.lesions;
  const locs = LESION_LOCATIONS.map((k) => `${k} ${l.countByLocation[k]}`).join(', ');
  const c = result.change;
  return (
    `${l.count} lesions, ${l.totalVolumeMl.toFixed(2)} mL (${locs})` +
    (c === undefined
      ? ''
      : `; vs prior: ${c.newCount} new, ${c.enlargedCount} enlarged, ${c.disappearedCount} disappeared, ` +
        `${c.totalVolumeChangeMl >= 0 ? '+' : ''}${c.totalVolumeChangeMl.toFixed(2)} mL`)
  );
}

interface PriorExam {
  readonly inputs: StudyInputs;
  readonly segmentation: SegmentationOutput;
}

export function analyzeStudyPipeline(deps: AnalyzeStudyDeps): AnalysisPipeline {
  return async (ctx) => {
    const { analysis, signal } = ctx;
    const order = analysis.order;
    const progress = new StepProgress(ctx);
    const warnings: string[] = [];

    // 1. load
    const inputs = await loadInputsWithProgress(deps.load, ctx, order.studyInstanceUid, ...SPAN.load);
    for (const v of [inputs.flair, inputs.t2, inputs.t1]) if (v !== undefined) warnings.push(...v.warnings);
    checkAborted(signal);

    // 2. segment
    const segmentOptions = {
      ...(order.options.modelId === undefined ? {} : { modelId: order.options.modelId }),
      ...(deps.settings?.mirror === undefined ? {} : { mirror: deps.settings.mirror }),
      ...(deps.settings?.brainExtraction === undefined
        ? {}
        : { brainExtraction: deps.settings.brainExtraction }),
      signal,
    };
    const flair = inputs.flair.volume;
    const seg = await segmentLesions(
      deps.segment,
      {
        flair,
        ...(inputs.t2 === undefined ? {} : { t2: inputs.t2.volume }),
        ...(inputs.t1 === undefined ? {} : { t1: inputs.t1.volume }),
      },
      { ...segmentOptions, progress: progress.forSpan(SPAN.segment, 'segment') },
    );
    warnings.push(...seg.warnings);
    await progress.flush();

    // 3. anatomy + 4. measure
    progress.report(SPAN.anatomy, 0, 'anatomy');
    const anat = await buildAnatomy(deps, flair, seg, signal);
    warnings.push(...anat.warnings);
    const lesions = analyzeLesions(seg.mask, flair, anat.anatomy);
    progress.report(SPAN.anatomy, 1, 'measure');
    await progress.flush();

    // 5. compare with the prior exam
    let prior: PriorExam | undefined;
    let change: ChangeResult | undefined;
    if (order.priorStudyInstanceUid !== undefined) {
      checkAborted(signal);
      const priorInputs = await loadStudyInputs(
        deps.load,
        order.priorStudyInstanceUid,
        progress.forSpan(SPAN.priorLoad, 'prior'),
      ).catch((e: unknown) => {
        if (e instanceof DomainError)
          throw new DomainError(`PRIOR.${e.code.replace(/\./g, '_')}`, `prior study: ${e.message}`, {
            issueType: e.issueType,
            cause: e,
          });
        throw e;
      });
      const priorSeg = await segmentLesions(
        deps.segment,
        {
          flair: priorInputs.flair.volume,
          ...(priorInputs.t2 === undefined ? {} : { t2: priorInputs.t2.volume }),
          ...(priorInputs.t1 === undefined ? {} : { t1: priorInputs.t1.volume }),
        },
        { ...segmentOptions, progress: progress.forSpan(SPAN.priorSegment, 'prior segment') },
      );
      await progress.flush();
      prior = { inputs: priorInputs, segmentation: priorSeg };
      progress.report(SPAN.compare, 0, 'compare');
      change = compareExams(
        { flair: priorInputs.flair.volume, mask: priorSeg.mask },
        { flair, mask: seg.mask },
        {
          priorStudyInstanceUid: order.priorStudyInstanceUid,
          ...(priorInputs.study.studyDate === undefined
            ? {}
            : { priorStudyDate: priorInputs.study.studyDate }),
        },
      );
      warnings.push(...change.warnings);
      if (priorSeg.model.variant !== seg.model.variant)
        warnings.push(
          `prior exam segmented with the ${priorSeg.model.variant} variant, current with ${seg.model.variant}`,
        );
      progress.report(SPAN.compare, 1, 'compare');
      await progress.flush();
    }

    const model: ModelUsed = seg.model;
    const changeSummary: ChangeSummary | undefined = change?.summary;
    const result: AnalysisResult = {
      model,
      lesions: lesions.summary,
      ...(changeSummary === undefined ? {} : { change: changeSummary }),
      series: {
        flair: seriesRef(inputs.flair),
        ...(inputs.t2 === undefined ? {} : { t2: seriesRef(inputs.t2) }),
        ...(inputs.t1 === undefined ? {} : { t1: seriesRef(inputs.t1) }),
      },
      ...(inputs.study.studyDate === undefined ? {} : { studyDate: inputs.study.studyDate }),
      anatomySource: lesions.anatomySource,
      backend: seg.backend,
      warnings,
    };

    // 6. artifacts
    checkAborted(signal);
    progress.report(SPAN.artifacts, 0, 'artifacts');
    const createdAt = deps.now().toISOString();
    const put = (name: string, data: Uint8Array, type: string): Promise<unknown> =>
      ctx.artifacts.put(name, data, type);
    const NIFTI = 'application/gzip';
    await put('lesion_mask.nii.gz', deps.codec.encodeNifti(seg.mask, 'mslesion lesion mask'), NIFTI);
    await put(
      'lesion_labels.nii.gz',
      deps.codec.encodeNifti(labelsAsInt16(lesions.labelMap), 'lesion ids'),
      NIFTI,
    );
    await put('brain_mask.nii.gz', deps.codec.encodeNifti(seg.brainMask, 'brain mask'), NIFTI);
    await put('lesions.csv', new TextEncoder().encode(lesionsCsv(lesions.summary, change)), 'text/csv');
    if (change !== undefined) {
      await put(
        'change_mask.nii.gz',
        deps.codec.encodeNifti(change.changeMask, 'lesion change: 1 new, 2 enlarged'),
        NIFTI,
      );
      // the prior → current registration, so it can be audited or re-applied (ITK convention)
      await put(
        'registration.json',
        new TextEncoder().encode(
          JSON.stringify(
            {
              convention: 'row-major 4x4, maps current-exam LPS (mm) to prior-exam LPS (ITK fixed → moving)',
              transform: change.transform,
              priorStudyInstanceUid: order.priorStudyInstanceUid,
              ...change.summary.registration,
            },
            null,
            2,
          ) + '\n',
        ),
        'application/json',
      );
    }
    let reportPdf: Uint8Array | undefined;
    if (deps.report !== undefined) {
      const history = deps.history === undefined ? [] : await deps.history(order.patientId, analysis.id);
      const thisExam: ExamLoad | undefined =
        inputs.study.studyDate === undefined
          ? undefined
          : {
              date: inputs.study.studyDate,
              totalVolumeMl: lesions.summary.totalVolumeMl,
              count: lesions.summary.count,
            };
      const priorExam: ExamLoad | undefined =
        prior?.inputs.study.studyDate === undefined || changeSummary === undefined
          ? undefined
          : { date: prior.inputs.study.studyDate, totalVolumeMl: changeSummary.priorTotalVolumeMl };
      const exams = new Map<string, ExamLoad>();
      for (const e of [...history, priorExam, thisExam]) if (e !== undefined) exams.set(e.date, e);
      const { series: _series, ...studyHeader } = inputs.study;
      reportPdf = await deps.report.renderPdf({
        analysisId: analysis.id,
        study: studyHeader,
        result,
        flair,
        mask: seg.mask,
        labels: lesions.labelMap,
        ...(change === undefined ? {} : { changeMask: change.changeMask }),
        createdAt,
        ...(exams.size > 1 ? { history: [...exams.values()] } : {}),
      });
      await put('report.pdf', reportPdf, 'application/pdf');
    }
    progress.report(SPAN.artifacts, 1, 'artifacts');
    await progress.flush();

    // 7. publish to the PACS
    if (deps.publisher !== undefined && order.options.publishToPacs !== false) {
      checkAborted(signal);
      progress.report(SPAN.publish, 0, 'publish to PACS');
      await progress.flush();
      await deps.publisher.publish({
        analysisId: analysis.id,
        study: inputs.study,
        flair: inputs.flair,
        mask: seg.mask,
        ...(change === undefined ? {} : { changeMask: newOrEnlarging(change.changeMask) }),
        result,
        ...(reportPdf === undefined ? {} : { reportPdf }),
        createdAt,
      });
      progress.report(SPAN.publish, 1, 'published');
    }
    await progress.flush();
    return { result, findings: inputs.findings };
  };
}
