/**
 * The analysis pipeline as far as ingestion goes: pull the study from the image source (PACS over DICOMweb,
 * or a folder), classify its series, build the FLAIR (required), T2 and T1 volumes, and record the findings.
 * The full pipeline (segment → measure → compare → publish, domain/use-cases/analyze-study.ts) runs these
 * same steps first; this one ends after them, and fails with the loader's coded reason (STUDY.NOT_FOUND,
 * STUDY.WRONG_MODALITY, SERIES.NO_FLAIR, PACS.*) when the study cannot be analysed.
 */
import type { AnalysisPipeline, PipelineContext } from './run-analysis.ts';
import { loadStudyInputs, type LoadStudyDeps, type StudyInputs } from './load-study.ts';

/**
 * Runs loadStudyInputs with progress mapped into [from, to] of the run. Progress writes are chained in order;
 * a failing write (a lost lease) fails the load.
 */
export async function loadInputsWithProgress(
  deps: LoadStudyDeps,
  ctx: PipelineContext,
  studyInstanceUid: string,
  from = 0,
  to = 1,
): Promise<StudyInputs> {
  let chain: Promise<void> = Promise.resolve();
  let failed: Error | undefined;
  const inputs = await loadStudyInputs(deps, studyInstanceUid, (fraction, step) => {
    chain = chain
      .then(() => ctx.progress(from + (to - from) * fraction, step))
      .catch((e: unknown) => {
        failed ??= e instanceof Error ? e : new Error(String(e));
      });
  });
  await chain;
  if (failed !== undefined) throw failed;
  await ctx.recordFindings(inputs.findings);
  return inputs;
}

/** The ingestion-only pipeline: succeeds with the findings once the input volumes are built. */
export function ingestionPipeline(deps: LoadStudyDeps): AnalysisPipeline {
  return async (ctx) => {
    const inputs = await loadInputsWithProgress(deps, ctx, ctx.analysis.order.studyInstanceUid, 0, 0.95);
    await ctx.progress(0.99, 'ingested');
    return { findings: inputs.findings };
  };
}
