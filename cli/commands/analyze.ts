/**
 * `mslesion analyze <dicom-folder> --out <dir>`: the whole pipeline on a local study, through the same use
 * cases a POSTed analysis runs (compose.ts with the embedded defaults: SQLite, in-process queue, the folder as
 * the image source, the CPU model), then an export of everything a site would receive:
 *
 *   <out>/report.pdf                  clinical PDF report
 *   <out>/lesion_mask.nii.gz          mask on the FLAIR grid (+ lesion_labels, brain_mask, change_mask)
 *   <out>/lesions.csv                 one row per lesion
 *   <out>/analysis.json               the analysis record (as GET /analyses/{id} returns it)
 *   <out>/fhir-bundle.json            FHIR R4 transaction bundle (what is pushed to the EHR)
 *   <out>/oru.hl7                     HL7 v2 ORU^R01 (what is sent to older EHRs)
 *   <out>/dicom/SEG_9901/…            DICOM SEG, SR, Encapsulated PDF, overlay Secondary Capture series
 *   <out>/overlays/*.png              FLAIR slices with the lesions outlined
 */
import { parseArgs } from 'node:util';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../config.ts';
import { compose } from '../../compose.ts';
import { DomainError } from '../../domain/errors.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import { describeResult } from '../../domain/use-cases/analyze-study.ts';
import { loadStudyInputs } from '../../domain/use-cases/load-study.ts';
import { selectDelineationSlices } from '../../domain/reporting/slices.ts';
import { FolderImageSource } from '../../adapters/dicom/folder-source.ts';
import { FolderStowClient } from '../../adapters/dicom/folder-stow.ts';
import { DicomWebPacsPublisher } from '../../adapters/dicom/derived/pacs-publisher.ts';
import { loadSeriesRules } from '../../adapters/dicom/series-rules-file.ts';
import { buildResultBundle } from '../../adapters/fhir/result-bundle.ts';
import { buildOru } from '../../adapters/hl7v2/oru.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { encodePng, renderOverlaySlice } from '../../adapters/report/overlay.ts';
import { autoWindow } from '../../domain/reporting/slices.ts';
import type { Mask } from '../../domain/model/volume.ts';
import { threadsFlag, usage, type CommandIo } from '../wiring/command.ts';

const HELP = `usage: mslesion analyze <dicom-folder> --out <dir> [options]
Runs the whole analysis on a local DICOM study (FLAIR required, T2 and T1 optional) and writes the report,
masks, lesion table, FHIR bundle, HL7 ORU and DICOM SEG/SR/PDF/overlay objects into <dir>.
options:
  --study UID            the study to analyse when the folder holds several
  --prior-study UID      a prior study of the same patient in the folder: adds the longitudinal comparison
  --patient-id ID        the patient identifier for the results (default: the study's PatientID)
  --model ID             lesion model id (default: the installed default)
  --no-mirror            no test-time mirroring (faster, slightly less accurate)
  --anatomy parcellation|flair   anatomy for lesion location (default parcellation)
  --threads N            onnxruntime intra-op threads
  --inference-url URL    run the network on a KServe v2 / Triton server
  --json                 print the analysis record as JSON at the end`;

async function chooseStudy(folder: string, wanted: string | undefined): Promise<string> {
  const instances = await new FolderImageSource(folder).scan();
  const studies = [...new Set(instances.map((i) => i.studyInstanceUid))];
  if (wanted !== undefined) {
    if (!studies.includes(wanted))
      throw new DomainError('STUDY.NOT_FOUND', `study ${wanted} is not in ${folder}`, {
        issueType: 'not-found',
      });
    return wanted;
  }
  if (studies.length === 0)
    throw new DomainError('STUDY.NOT_FOUND', `no DICOM study in ${folder}`, { issueType: 'not-found' });
  if (studies.length > 1)
    throw usage(`${folder} holds ${studies.length} studies: choose one with --study (${studies.join(', ')})`);
  return studies[0];
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  let folder: string;
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        study: { type: 'string' },
        'prior-study': { type: 'string' },
        'patient-id': { type: 'string' },
        model: { type: 'string' },
        'no-mirror': { type: 'boolean', default: false },
        anatomy: { type: 'string' },
        threads: { type: 'string' },
        'inference-url': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
    values = parsed.values;
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw usage('give exactly one DICOM folder');
    folder = resolve(parsed.positionals[0]);
    if (values.out === undefined) throw usage('--out is required');
    if (values.anatomy !== undefined && values.anatomy !== 'parcellation' && values.anatomy !== 'flair')
      throw usage('--anatomy must be parcellation or flair');
    threadsFlag(values.threads);
  } catch (e) {
    io.err(`mslesion analyze: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }

  const out = resolve(values.out);
  const state = join(out, '.mslesion');
  const started = Date.now();
  const studyUid = await chooseStudy(folder, values.study);
  const overrides: Record<string, string | number | boolean> = {
    role: 'worker',
    dataDir: state,
    'store.kind': 'sqlite',
    'queue.kind': 'in-process',
    dicomFolder: folder,
    'artifacts.dir': join(state, 'artifacts'),
    inboxDir: join(state, 'inbox'),
  };
  if (values['no-mirror']) overrides['pipeline.mirror'] = false;
  if (values.anatomy !== undefined) overrides['pipeline.anatomy'] = values.anatomy;
  if (values.threads !== undefined) overrides['inference.threads'] = Number(values.threads);
  if (values['inference-url'] !== undefined) overrides['inference.remoteUrl'] = values['inference-url'];
  if (values.model !== undefined) overrides['models.defaultLesionModel'] = values.model;
  // The embedded defaults: no PACS, no EHR endpoints — results are exported into <out> instead.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^MSLESION_(PACS_|FHIR_|ORU_|HL7_|AUTH_|STORE|DATABASE|QUEUE|REDIS)/.test(k),
    ),
  );
  const config = loadConfig({ env, overrides });
  const dicomOut = join(out, 'dicom');
  await rm(dicomOut, { recursive: true, force: true });
  const stow = new FolderStowClient(dicomOut);
  // JSON log lines go to stderr beside the progress: stdout carries only the summary printed below
  const logger = createLogger({
    level: config.log.level,
    base: { role: config.role },
    destination: process.stderr,
  });
  const c = await compose(config, { publisher: new DicomWebPacsPublisher({ stow }), logger });
  let analysis: Analysis;
  try {
    const source = new FolderImageSource(folder);
    const study = await source.findStudy(studyUid);
    const patientId = values['patient-id'] ?? study.patientId;
    if (patientId === undefined || patientId === '')
      throw usage('the study has no PatientID: give one with --patient-id');
    const submitted = await c.useCases.submitOrder({
      studyInstanceUid: studyUid,
      patientId,
      source: 'cli',
      options: values.model === undefined ? {} : { modelId: values.model },
      ...(values['prior-study'] === undefined ? {} : { priorStudyInstanceUid: values['prior-study'] }),
    });
    const id = submitted.analysis.id;
    io.out(`analysis ${id}: study ${studyUid}`);
    // progress: the run writes it to the store; show it as it moves
    let last = '';
    const timer = setInterval(() => {
      void c.store.get(id).then((a) => {
        const line = `[${Math.round(a?.progress ?? 0)
          .toString()
          .padStart(3)} %] ${a?.step ?? ''}`;
        if (a !== undefined && line !== last) io.progress(line);
        last = line;
      });
    }, 250);
    try {
      await c.useCases.runAnalysis(id);
    } finally {
      clearInterval(timer);
    }
    const done = await c.store.get(id);
    if (done === undefined) throw new DomainError('ANALYSIS.NOT_FOUND', `analysis ${id} vanished`);
    analysis = done;
    io.progress('');
    if (analysis.status !== 'succeeded' || analysis.result === undefined) {
      const err = analysis.error ?? { code: 'ANALYSIS.FAILED', message: `status ${analysis.status}` };
      io.err(`mslesion analyze: ${err.code}: ${err.message}`);
      await writeFile(join(out, 'analysis.json'), JSON.stringify(analysis, null, 2));
      return 1;
    }

    // export
    await mkdir(out, { recursive: true });
    for (const a of analysis.artifacts) {
      const stored = await c.artifacts.get(id, a.name);
      if (stored !== undefined) await writeFile(join(out, a.name), stored.data);
    }
    await writeFile(join(out, 'analysis.json'), JSON.stringify(analysis, null, 2) + '\n');
    const pdf = await c.artifacts.get(id, 'report.pdf');
    const bundle = buildResultBundle(analysis, study, pdf === undefined ? {} : { pdf: pdf.data });
    await writeFile(join(out, 'fhir-bundle.json'), JSON.stringify(bundle, null, 2) + '\n');
    await writeFile(join(out, 'oru.hl7'), buildOru(analysis, study).replace(/\r/g, '\r\n'));
    const overlays = await writeOverlays(folder, studyUid, out);

    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const r = analysis.result;
    io.out(`done in ${seconds} s — ${describeResult(r)}`);
    io.out(`model ${r.model.id} ${r.model.version}, variant ${r.model.variant} (${r.model.reason})`);
    for (const w of r.warnings) io.out(`warning: ${w}`);
    const dicomSeries = (await readdir(dicomOut).catch(() => [])).sort();
    io.out(`\nresults in ${out}:`);
    io.out(`  report.pdf            the clinical report (open it first)`);
    io.out(`  overlays/             ${overlays} FLAIR slices with the lesions outlined (PNG)`);
    io.out(`  lesion_mask.nii.gz    lesion mask on the FLAIR grid; lesions.csv one row per lesion`);
    io.out(`  fhir-bundle.json      FHIR R4 results bundle; oru.hl7 the HL7 v2 ORU^R01`);
    io.out(`  dicom/                ${dicomSeries.join(', ')} (SEG, SR, PDF, overlay preview)`);
    if (values.json) io.out(JSON.stringify(analysis, null, 2));
    return 0;
  } finally {
    await c.close();
  }
}

/** PNGs of the most informative FLAIR slices with the lesion outlines (the report's examples, bigger). */
async function writeOverlays(folder: string, studyUid: string, out: string): Promise<number> {
  const inputs = await loadStudyInputs(
    { images: new FolderImageSource(folder), rules: await loadSeriesRules(undefined) },
    studyUid,
  );
  const flair = inputs.flair.volume;
  const labels = (await readNifti(join(out, 'lesion_labels.nii.gz'))).volume;
  const mask = (await readNifti(join(out, 'lesion_mask.nii.gz'))).volume as Mask;
  let change: Mask | undefined;
  try {
    change = (await readNifti(join(out, 'change_mask.nii.gz'))).volume as Mask;
  } catch {
    change = undefined; // no prior exam: no change mask
  }
  const dir = join(out, 'overlays');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const window = autoWindow(flair);
  const slices = selectDelineationSlices(labels, { count: 6 });
  for (const k of slices) {
    const img = renderOverlaySlice(flair, mask, k, {
      window,
      scale: 3,
      ...(change === undefined ? {} : { changeMask: change }),
      banner: [`slice ${k + 1}/${flair.dims[2]}`, 'AI-generated - not for diagnosis'],
    });
    await writeFile(join(dir, `slice_${String(k + 1).padStart(3, '0')}.png`), encodePng(img.image));
  }
  return slices.length;
}
