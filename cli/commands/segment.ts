/**
 * `mslesion segment --flair F.nii.gz [--t2 F] [--t1 F] --out mask.nii.gz [--model id] [--probabilities P.nii.gz]
 *                   [--brain-mask M] [--no-mirror] [--threads N] [--provider cpu|cuda] [--cuda-fallback cpu|fail]
 *                   [--models-dir DIR] [--inference-url URL] [--json]`
 *
 * The research entry point (like the AIMS command line): NIfTI in, a lesion mask on the FLAIR grid out, through
 * the same segmentLesions use case as the service. Progress on stderr; a summary (model, variant, reason,
 * lesion volume, warnings) on stdout. Exit codes: 0 ok, 1 a coded failure, 2 usage.
 */
import { parseArgs } from 'node:util';
import type { InferenceEngine } from '../../domain/ports/inference.port.ts';
import { segmentLesions } from '../../domain/use-cases/segment-lesions.ts';
import { spacingOf } from '../../domain/model/geometry.ts';
import { readNifti, writeNifti } from '../../adapters/nifti/nifti.ts';
import {
  engineFlags,
  failed,
  openCommandEngine,
  openCommandModels,
  usage,
  type CommandIo,
  type EngineFlags,
} from '../wiring/command.ts';

const HELP = `usage: mslesion segment --flair F.nii.gz [--t2 F.nii.gz] [--t1 F.nii.gz] --out mask.nii.gz [options]
options:
  --model ID             model id (default: the installed default lesion model)
  --probabilities P      also write the lesion probability map (float32, FLAIR grid)
  --brain-mask M         brain mask (any grid; resampled onto the FLAIR); default: the non-zero region of a
                         skull-stripped FLAIR
  --brain-model ID       brain-extraction model for FLAIRs that are not skull-stripped (default: the installed one)
  --brain-spacing MM     brain-extraction grid spacing (default the model's, 1 mm; 2 = fast mode)
  --no-mirror            no test-time mirroring (≈8× faster, slightly less accurate)
  --threads N            onnxruntime intra-op threads (default: all cores)
  --provider cpu|cuda    execution provider (default cpu); --cuda-fallback cpu|fail (default fail)
  --models-dir DIR       model folder (default: MSLESION_MODELS_DIR or the repository's models/)
  --inference-url URL    run the network on a KServe v2 / Triton server instead of locally
  --json                 print the summary as JSON`;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  let engineOptions: EngineFlags;
  try {
    values = parseArgs({
      args: argv,
      options: {
        flair: { type: 'string' },
        t2: { type: 'string' },
        t1: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string' },
        probabilities: { type: 'string' },
        'brain-mask': { type: 'string' },
        'brain-model': { type: 'string' },
        'brain-spacing': { type: 'string' },
        'no-mirror': { type: 'boolean', default: false },
        threads: { type: 'string' },
        provider: { type: 'string', default: 'cpu' },
        'cuda-fallback': { type: 'string', default: 'fail' },
        'models-dir': { type: 'string' },
        'inference-url': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    if (values.flair === undefined) throw usage('--flair is required');
    if (values.out === undefined) throw usage('--out is required');
    engineOptions = engineFlags(values);
    if (values['brain-spacing'] !== undefined && !(Number(values['brain-spacing']) > 0))
      throw usage('--brain-spacing must be a positive number of mm');
  } catch (e) {
    io.err(`mslesion segment: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }

  let engine: InferenceEngine | undefined;
  try {
    const models = await openCommandModels('segment', io, values['models-dir']);
    engine = await openCommandEngine('segment', io, engineOptions);
    io.progress('reading images');
    const flair = (await readNifti(values.flair)).volume;
    const t2 = values.t2 === undefined ? undefined : (await readNifti(values.t2)).volume;
    const t1 = values.t1 === undefined ? undefined : (await readNifti(values.t1)).volume;
    const brain =
      values['brain-mask'] === undefined ? undefined : (await readNifti(values['brain-mask'])).volume;
    const brainMask =
      brain === undefined
        ? undefined
        : {
            dims: brain.dims,
            affine: brain.affine,
            data: Uint8Array.from(brain.data, (v) => (v !== 0 ? 1 : 0)),
          };
    const t0 = performance.now();
    const result = await segmentLesions(
      { engine, models },
      {
        flair,
        ...(t2 === undefined ? {} : { t2 }),
        ...(t1 === undefined ? {} : { t1 }),
        ...(brainMask === undefined ? {} : { brainMask }),
      },
      {
        ...(values.model === undefined ? {} : { modelId: values.model }),
        mirror: !values['no-mirror'],
        ...(values['brain-model'] === undefined ? {} : { brainModelId: values['brain-model'] }),
        ...(values['brain-spacing'] === undefined
          ? {}
          : { brainExtraction: { spacing: Number(values['brain-spacing']) } }),
        progress: (f, step) => {
          io.progress(`${(100 * f).toFixed(0).padStart(3)} % ${step}`);
        },
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    await writeNifti(
      values.out,
      result.mask,
      `lesions ${result.model.id} ${result.model.variant}`.slice(0, 79),
    );
    if (values.probabilities !== undefined)
      await writeNifti(
        values.probabilities,
        result.probabilities,
        `lesion probability ${result.model.id}`.slice(0, 79),
      );
    const sp = spacingOf(flair.affine);
    let voxels = 0;
    for (const v of result.mask.data) if (v !== 0) voxels++;
    const summary = {
      model: result.model,
      backend: result.backend,
      brainMask: result.brainMaskSource,
      alignment: result.alignment.map((a) => ({
        channel: a.channel,
        method: a.method,
        ...(a.shiftMm === undefined ? {} : { shiftMm: Number(a.shiftMm.toFixed(2)) }),
      })),
      lesionVoxels: voxels,
      lesionVolumeMl: Number(((voxels * sp[0] * sp[1] * sp[2]) / 1000).toFixed(3)),
      seconds: Number(seconds.toFixed(1)),
      warnings: result.warnings,
      out: values.out,
      ...(values.probabilities === undefined ? {} : { probabilities: values.probabilities }),
    };
    if (values.json) io.out(JSON.stringify(summary, null, 2));
    else {
      io.out(
        `model     ${result.model.id} ${result.model.version} (${result.model.variant}: ${result.model.reason})`,
      );
      io.out(`backend   ${result.backend}; brain mask: ${result.brainMaskSource}`);
      for (const a of summary.alignment)
        io.out(
          `${a.channel.padEnd(9)} ${a.method}${a.shiftMm === undefined ? '' : `, moved ${a.shiftMm} mm`}`,
        );
      io.out(`lesions   ${voxels} voxels, ${summary.lesionVolumeMl} mL (${summary.seconds} s)`);
      for (const w of result.warnings) io.out(`warning   ${w}`);
      io.out(
        `wrote     ${values.out}${values.probabilities === undefined ? '' : `, ${values.probabilities}`}`,
      );
    }
    return 0;
  } catch (e) {
    return failed('segment', io, e);
  } finally {
    await engine?.close();
  }
}
