/**
 * End to end, the demo exactly as a user runs it (scripts/demo.sh does the same two commands): build the
 * bundled demo study with `node scripts/build-demo-study.ts <dir>` (real open_ms patient26 → MR DICOM), then
 * `node cli/mslesion.ts analyze <dir> --out <out>` as a child process with the installed default lesion model
 * (models/mslesion-unet3d-v1, every default: mirroring, parcellation anatomy). Checks every output file, the
 * exit code and printed summary against analysis.json, dciodvfy with 0 errors on the SEG, SR, Encapsulated PDF
 * and one Secondary Capture, the SEG decoded back equal to lesion_mask.nii.gz, the FHIR bundle valid against the
 * R4 definitions (@medplum/core), and the report rendered by pdftoppm with the lesion count and total volume in
 * its text. The model's numbers are never hard-coded: it is retrained from time to time.
 * A folder without FLAIR exits 1 with SERIES.NO_FLAIR.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { Hl7Message } from '@medplum/core';
import { dciodvfy, dciodvfyAvailable } from '../../adapters/dicom/derived/testing/dciodvfy.ts';
import { readSegmentation } from '../../adapters/dicom/derived/segmentation-reader.ts';
import { buildResearchStudy, writeStudyFolder } from '../../adapters/dicom/research-import.ts';
import { parsePart10 } from '../../adapters/dicom/part10.ts';
import { str } from '../../adapters/dicom/dataset.ts';
import { fhirErrors } from '../../adapters/fhir/validation.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import { LESION_LOCATIONS } from '../../domain/model/analysis.ts';
import type { Mask } from '../../domain/model/volume.ts';
import { REPO_ROOT, openMs } from '../helpers/fixtures.ts';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs `node <args>` in the repository root as a user's shell would (no TTY, the user's environment). */
function node(args: readonly string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

const SERIES = ['SEG_9901', 'SR_9902', 'DOC_9903', 'OT_9904'] as const;

describe('the demo: mslesion analyze on the bundled demo study with the default model', () => {
  let tmp: string;
  let studyDir: string;
  let out: string;
  let run: Run;
  let analysis: Analysis;
  const dicomFiles = (series: string): string[] =>
    readdirSync(join(out, 'dicom', series))
      .filter((f) => f.endsWith('.dcm'))
      .sort()
      .map((f) => join(out, 'dicom', series, f));

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mslesion-demo-'));
    studyDir = join(tmp, 'demo-study');
    out = join(tmp, 'out');
    const built = await node(['scripts/build-demo-study.ts', studyDir]);
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stdout, /^built demo study 2\.25\.\d+ in /);
    run = await node(['cli/mslesion.ts', 'analyze', studyDir, '--out', out]);
    analysis = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8')) as Analysis;
  });

  after(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('exits 0 and prints a summary that agrees with analysis.json', () => {
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal(analysis.status, 'succeeded');
    const r = analysis.result!;
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines[0], `analysis ${analysis.id}: study ${analysis.order.studyInstanceUid}`);
    const locs = LESION_LOCATIONS.map((k) => `${k} ${r.lesions.countByLocation[k]}`).join(', ');
    const done = lines.find((l) => l.startsWith('done in '));
    assert.ok(done, run.stdout);
    assert.match(done, /^done in \d+\.\d s — /);
    assert.ok(
      done.endsWith(`— ${r.lesions.count} lesions, ${r.lesions.totalVolumeMl.toFixed(2)} mL (${locs})`),
      done,
    );
    assert.ok(r.lesions.count > 0, 'the demo case has lesions');
    assert.equal(r.model.id, 'mslesion-unet3d-v1');
    assert.equal(r.model.variant, 'flair-t2-t1', 'FLAIR, T2 and T1 in the demo study');
    assert.ok(
      lines.includes(
        `model ${r.model.id} ${r.model.version}, variant ${r.model.variant} (${r.model.reason})`,
      ),
    );
    // where to look, report first
    const at = lines.indexOf(`results in ${out}:`);
    assert.ok(at > 0, run.stdout);
    assert.match(lines[at + 1], /^ {2}report\.pdf\s+the clinical report \(open it first\)$/);
    assert.ok(lines.some((l) => /^ {2}dicom\/\s+DOC_9903, OT_9904, SEG_9901, SR_9902 /.test(l)));
    assert.ok(lines.some((l) => /^ {2}overlays\/\s+6 FLAIR slices/.test(l)));
    assert.match(run.stderr, /^\[\s*\d+ %\] /m, 'progress on stderr');
  });

  it('writes every output', () => {
    for (const f of [
      'report.pdf',
      'lesion_mask.nii.gz',
      'lesion_labels.nii.gz',
      'brain_mask.nii.gz',
      'lesions.csv',
      'analysis.json',
      'fhir-bundle.json',
      'oru.hl7',
    ])
      assert.ok(existsSync(join(out, f)) && statSync(join(out, f)).size > 0, f);
    for (const s of SERIES) assert.ok(dicomFiles(s).length >= 1, s);
    assert.equal(dicomFiles('SEG_9901').length, 1);
    const pngs = readdirSync(join(out, 'overlays')).filter((f) => f.endsWith('.png'));
    assert.equal(pngs.length, 6);
    for (const p of pngs) {
      const img = PNG.sync.read(readFileSync(join(out, 'overlays', p)));
      assert.ok(img.width > 100 && img.height > 100, p);
    }
    const csv = readFileSync(join(out, 'lesions.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length - 1, analysis.result?.lesions.count);
    assert.ok(analysis.artifacts.every((a) => existsSync(join(out, a.name))));
    const oru = Hl7Message.parse(readFileSync(join(out, 'oru.hl7'), 'utf8').replace(/\r\n/g, '\r'));
    assert.equal(oru.getSegment('MSH')?.getField(9).toString(), 'ORU^R01^ORU_R01');
    assert.equal(oru.getSegment('PID')?.getField(3).getComponent(1), 'MSDEMO-26');
  });

  it('writes DICOM SEG, SR, PDF and Secondary Capture objects that pass dciodvfy with 0 errors', async () => {
    assert.ok(dciodvfyAvailable(), 'dciodvfy (Debian dicom3tools) is installed');
    const expected = {
      SEG_9901: /^Segmentation$/,
      SR_9902: /SR$/,
      DOC_9903: /^EncapsulatedPDF$/,
      OT_9904: /SCImage$/,
    };
    for (const s of SERIES) {
      const file = dicomFiles(s)[0];
      const report = await dciodvfy(readFileSync(file));
      assert.deepEqual(report.errors, [], `${s}: ${report.output}`);
      assert.match(report.iod, expected[s], `${s} is a ${report.iod}`);
      const ds = parsePart10(readFileSync(file)).dataset;
      assert.equal(str(ds, 'StudyInstanceUID'), analysis.order.studyInstanceUid);
    }
  });

  it('decodes the SEG back to exactly lesion_mask.nii.gz', async () => {
    const mask = (await readNifti(join(out, 'lesion_mask.nii.gz'))).volume as Mask;
    const seg = readSegmentation(readFileSync(dicomFiles('SEG_9901')[0]), mask);
    assert.equal(seg.segments.length, 1, 'no prior: one segment');
    assert.deepEqual(
      seg.segments[0].mask.data,
      Uint8Array.from(mask.data, (v) => (v !== 0 ? 1 : 0)),
    );
    let voxels = 0;
    for (const v of mask.data) if (v !== 0) voxels++;
    assert.ok(voxels > 0);
    assert.equal(seg.studyInstanceUid, analysis.order.studyInstanceUid);
  });

  it('writes a FHIR bundle that validates against the R4 definitions', () => {
    const bundle = JSON.parse(readFileSync(join(out, 'fhir-bundle.json'), 'utf8')) as Bundle;
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'transaction');
    assert.deepEqual(fhirErrors(bundle), []);
    const types = new Set<string>();
    for (const e of bundle.entry ?? []) {
      const r = e.resource as Resource;
      types.add(r.resourceType);
      assert.deepEqual(fhirErrors(r), [], `${r.resourceType}/${r.id ?? ''}`);
    }
    for (const t of ['ImagingStudy', 'Observation', 'DiagnosticReport', 'Device', 'Provenance'])
      assert.ok(types.has(t), t);
    const count = (bundle.entry ?? [])
      .map((e) => e.resource)
      .find((r) => r?.resourceType === 'Observation' && r.id?.endsWith('-lesion-count'));
    assert.equal(
      count?.resourceType === 'Observation' ? count.valueQuantity?.value : undefined,
      analysis.result?.lesions.count,
    );
  });

  it('writes a report PDF that renders and states the lesion count and total volume', () => {
    const pdf = join(out, 'report.pdf');
    execFileSync('pdftoppm', ['-png', '-r', '40', '-f', '1', '-l', '1', pdf, join(tmp, 'page')]);
    const page = readdirSync(tmp).find((f) => /^page-0*1\.png$/.test(f));
    assert.ok(page, 'pdftoppm wrote page 1');
    const img = PNG.sync.read(readFileSync(join(tmp, page)));
    assert.ok(img.height > img.width * 1.3 && img.height < img.width * 1.5, 'A4 portrait');
    const colours = new Set<number>();
    for (let p = 0; p < img.data.length; p += 4 * 7) colours.add(img.data.readUInt32BE(p));
    assert.ok(colours.size > 50, 'not a blank page');
    const images = execFileSync('pdfimages', ['-list', pdf], { encoding: 'utf8' }).trim().split('\n');
    assert.ok(images.length - 2 >= 2, 'delineation example images are embedded');
    const text = execFileSync('pdftotext', ['-layout', pdf, '-'], { encoding: 'utf8' });
    const l = analysis.result!.lesions;
    const ml = l.totalVolumeMl.toFixed(2).replace('.', '\\.');
    // the key figures ("Total lesion volume", "Number of lesions") side by side, then the location table
    assert.match(text, /Total lesion volume\s+Number of lesions/);
    assert.match(text, new RegExp(`\\b${ml} mL\\s+${l.count}\\s*\\n`));
    assert.match(text, new RegExp(`All locations\\s+${l.count}\\s+${ml}\\s`));
    assert.match(text, /MSDEMO-26/);
    assert.match(text, /NOT FOR DIAGNOSIS/);
  });

  it('exits 1 with SERIES.NO_FLAIR on a folder without FLAIR', async () => {
    const t1 = (await readNifti(openMs('cross_sectional', 'patient26', 'T1.nii.gz'))).volume;
    const study = buildResearchStudy([{ contrast: 'T1', volume: t1, source: 'patient26/T1.nii.gz' }], {
      patientId: 'MSDEMO-26',
      studyDate: '20170615',
    });
    const dir = join(tmp, 't1-only');
    await writeStudyFolder(study, dir);
    const failed = await node(['cli/mslesion.ts', 'analyze', dir, '--out', join(tmp, 'out-t1')]);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /^mslesion analyze: SERIES\.NO_FLAIR: /m);
    assert.doesNotMatch(failed.stdout, /^done in/m);
    const record = JSON.parse(readFileSync(join(tmp, 'out-t1', 'analysis.json'), 'utf8')) as Analysis;
    assert.equal(record.status, 'failed');
    assert.equal(record.error?.code, 'SERIES.NO_FLAIR');
    assert.ok(!existsSync(join(tmp, 'out-t1', 'report.pdf')));
  });
});
