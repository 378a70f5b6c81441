/**
 * Load a study's analysis inputs: find the study, classify and rank its series (domain/imaging), then build
 * the FLAIR (required), T2 and T1 (optional) volumes. A candidate that cannot be built (missing slices,
 * compressed pixel data, …) is noted in the findings and the next candidate of that role is tried; a PACS
 * failure (transient, timeout, login, security) aborts at once so the job can retry.
 *
 * Errors: STUDY.NOT_FOUND (from the image source), STUDY.WRONG_MODALITY and SERIES.NO_FLAIR
 * ('business-rule'), or the error of the best FLAIR candidate when none can be built. Each of them carries the
 * findings in `details.findings` (SeriesFinding[]) so a failed analysis still records what was found.
 */
import { DomainError, isDomainError } from '../errors.ts';
import type { SeriesFinding, SeriesRole } from '../model/analysis.ts';
import type { Volume } from '../model/volume.ts';
import type { ImageSource, SeriesDescriptor, StudyDescriptor } from '../ports/image-source.port.ts';
import { assembleVolume, type AssemblyOptions, type SliceRef } from '../imaging/assemble.ts';
import { candidates, classifyStudy, findingsOf, type ClassifiedSeries } from '../imaging/select-series.ts';
import type { SeriesRules } from '../imaging/series-rules.ts';

export interface LoadedVolume {
  readonly volume: Volume<Float32Array>;
  readonly series: SeriesDescriptor;
  /** Source plane of each k (SOP Instance UID, frame number): what a DICOM SEG references. */
  readonly slices: readonly SliceRef[];
  readonly frameOfReferenceUid?: string;
  readonly sliceSpacing: number;
  readonly warnings: readonly string[];
}

export interface StudyInputs {
  readonly study: StudyDescriptor;
  readonly findings: readonly SeriesFinding[];
  readonly flair: LoadedVolume;
  readonly t2?: LoadedVolume;
  readonly t1?: LoadedVolume;
}

export interface LoadStudyDeps {
  readonly images: ImageSource;
  readonly rules: SeriesRules;
  readonly assembly?: AssemblyOptions;
}

/** Errors that say the source itself is failing (not this series): never hide them behind a fallback. */
function isSourceFailure(e: DomainError): boolean {
  return (
    ['transient', 'timeout', 'login', 'security', 'forbidden'].includes(e.issueType) ||
    e.code.startsWith('PACS.')
  );
}

function withFindings(e: DomainError, findings: readonly SeriesFinding[]): DomainError {
  return new DomainError(e.code, e.message, {
    issueType: e.issueType,
    details: { ...e.details, findings },
    cause: e,
  });
}

export async function loadStudyInputs(
  deps: LoadStudyDeps,
  studyInstanceUid: string,
  progress?: (fraction: number, step: string) => void,
): Promise<StudyInputs> {
  progress?.(0, 'find study');
  const study = await deps.images.findStudy(studyInstanceUid);
  const classified = classifyStudy(study, deps.rules);
  const selected = new Set<string>();
  const notes = new Map<string, string>();
  const findings = (): SeriesFinding[] => findingsOf(classified, selected, notes);

  const modalities = [...new Set(study.series.map((s) => s.modality))];
  if (!modalities.includes('MR'))
    throw new DomainError(
      'STUDY.WRONG_MODALITY',
      `the study has no MR series (modalities: ${modalities.join(', ') || 'none'}): only brain MRI can be analysed`,
      { issueType: 'business-rule', details: { modalities, findings: findings() } },
    );
  const flairs = candidates(classified, 'FLAIR');
  if (flairs.length === 0)
    throw new DomainError(
      'SERIES.NO_FLAIR',
      `no FLAIR series among the study's ${study.series.length} series (see the findings for each series' classification)`,
      { issueType: 'business-rule', details: { findings: findings() } },
    );
  progress?.(0.05, 'find study');

  const load = async (
    list: readonly ClassifiedSeries[],
    role: SeriesRole,
    from: number,
    to: number,
  ): Promise<{ loaded?: LoadedVolume; firstError?: DomainError }> => {
    const step = `load ${role}`;
    let firstError: DomainError | undefined;
    for (const c of list) {
      progress?.(from, step);
      try {
        const series = await deps.images.loadSeries(
          study.studyInstanceUid,
          c.series.seriesInstanceUid,
          (done, total) => {
            if (total > 0) progress?.(from + ((to - from) * 0.9 * done) / total, step);
          },
        );
        const a = assembleVolume(series.slices, deps.assembly);
        selected.add(c.series.seriesInstanceUid);
        notes.set(
          c.series.seriesInstanceUid,
          `selected as ${role}: ${a.volume.dims.join('×')} voxels, slice spacing ${a.sliceSpacing.toFixed(3)} mm` +
            (a.warnings.length > 0 ? ` (${a.warnings.join('; ')})` : ''),
        );
        progress?.(to, step);
        return {
          loaded: {
            volume: a.volume,
            series: series.descriptor,
            slices: a.slices,
            ...(a.frameOfReferenceUid === undefined ? {} : { frameOfReferenceUid: a.frameOfReferenceUid }),
            sliceSpacing: a.sliceSpacing,
            warnings: a.warnings,
          },
        };
      } catch (e) {
        if (!isDomainError(e) || isSourceFailure(e)) throw e;
        notes.set(c.series.seriesInstanceUid, `not usable: ${e.code}: ${e.message}`);
        firstError ??= e;
      }
    }
    return firstError === undefined ? {} : { firstError };
  };

  // failures from here on carry the findings, whatever their origin
  const tagged = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      throw isDomainError(e) && e.details.findings === undefined ? withFindings(e, findings()) : e;
    }
  };
  const flairResult = await tagged(() => load(flairs, 'FLAIR', 0.05, 0.55));
  const flair = flairResult.loaded;
  if (flair === undefined)
    throw withFindings(
      flairResult.firstError ??
        new DomainError('SERIES.NO_FLAIR', 'no usable FLAIR', { issueType: 'business-rule' }),
      findings(),
    );
  const t2 = (await tagged(() => load(candidates(classified, 'T2'), 'T2', 0.55, 0.8))).loaded;
  const t1 = (await tagged(() => load(candidates(classified, 'T1'), 'T1', 0.8, 1))).loaded;
  progress?.(1, 'load done');
  return {
    study,
    findings: findings(),
    flair,
    ...(t2 === undefined ? {} : { t2 }),
    ...(t1 === undefined ? {} : { t1 }),
  };
}
