/**
 * `mslesion dicom2nifti <folder> --out <dir> [--rules site.json] [--study UID] [--json]`
 *
 * Every series of every study in a DICOM folder (recursive; classic and enhanced MR) → one .nii.gz on the
 * series' own grid plus a JSON sidecar: series UID, description, classification (role, 2D/3D, rule and
 * reason), geometry (dims, spacing, LPS affine, orientation, slice spacing, tilt). No patient identifiers are
 * written to the sidecar or printed. One study: files go to <dir>; several: to <dir>/<StudyInstanceUID>/.
 * A series that cannot be built into a volume (a localizer with mixed orientations, a single slice …) is
 * reported with its code and skipped. Exit codes: 0 at least one series converted, 1 none (or a coded
 * failure), 2 usage.
 */
import { mkdir, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FolderImageSource } from '../../adapters/dicom/folder-source.ts';
import { loadSeriesRules } from '../../adapters/dicom/series-rules-file.ts';
import { writeNifti } from '../../adapters/nifti/nifti.ts';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import { assembleVolume } from '../../domain/imaging/assemble.ts';
import { classifySeries } from '../../domain/imaging/series-rules.ts';
import { orientationCode, spacingOf } from '../../domain/model/geometry.ts';
import { createVolume, type Volume } from '../../domain/model/volume.ts';
import { failed, usage, type CommandIo } from '../wiring/command.ts';

const HELP = `usage: mslesion dicom2nifti <folder> --out <dir> [options]
options:
  --out DIR        where the .nii.gz files and JSON sidecars go (created)
  --rules FILE     site series-classification rules (JSON, see config/series-rules.json)
  --study UID      only this StudyInstanceUID
  --json           print a JSON summary instead of lines`;

function safeName(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(0, 60) || 'series'
  );
}

/** int16 when every value is an integer in range (smaller files), else float32. */
function compact(v: Volume<Float32Array>): Volume {
  for (const x of v.data) if (!Number.isInteger(x) || x < -32768 || x > 32767) return v;
  return createVolume(v.dims, v.affine, Int16Array.from(v.data));
}

interface Converted {
  readonly file: string;
  readonly seriesInstanceUid: string;
  readonly role: string;
  readonly acquisition: string;
  readonly dims: readonly number[];
}

interface Failed {
  readonly seriesInstanceUid: string;
  readonly code: string;
  readonly message: string;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        rules: { type: 'string' },
        study: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values;
    positionals = parsed.positionals;
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw usage('give exactly one DICOM folder');
    if (values.out === undefined) throw usage('--out is required');
  } catch (e) {
    io.err(`mslesion dicom2nifti: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }
  const out = values.out;
  try {
    const rules = await loadSeriesRules(values.rules);
    const source = new FolderImageSource(positionals[0]);
    let studies = await source.listStudies();
    for (const s of source.skipped) io.err(`skipped ${s.path}: ${s.code}: ${s.reason}`);
    if (values.study !== undefined) studies = studies.filter((s) => s === values.study);
    if (studies.length === 0)
      throw new DomainError(
        'STUDY.NOT_FOUND',
        values.study === undefined
          ? 'no DICOM study in the folder'
          : `study ${values.study} is not in the folder`,
        {
          issueType: 'not-found',
        },
      );
    const converted: Converted[] = [];
    const failed: Failed[] = [];
    for (const studyUid of studies) {
      const dir = studies.length === 1 ? out : join(out, studyUid);
      await mkdir(dir, { recursive: true });
      const study = await source.findStudy(studyUid);
      for (const series of study.series) {
        const c = classifySeries(series, rules);
        const label = `${String(series.seriesNumber ?? 0).padStart(3, '0')}_${safeName(series.attributes.seriesDescription ?? series.modality)}`;
        try {
          io.progress(`${label}: loading ${series.numberOfInstances} instance(s)`);
          const every = Math.max(1, Math.floor(series.numberOfInstances / 10));
          const loaded = await source.loadSeries(studyUid, series.seriesInstanceUid, (done, total) => {
            if (done > 0 && (done % every === 0 || done === total)) io.progress(`${label}: ${done}/${total}`);
          });
          const a = assembleVolume(loaded.slices);
          const file = join(dir, `${label}.nii.gz`);
          await writeNifti(file, compact(a.volume), (series.attributes.seriesDescription ?? '').slice(0, 79));
          const sidecar = {
            studyInstanceUid: studyUid,
            seriesInstanceUid: series.seriesInstanceUid,
            seriesNumber: series.seriesNumber,
            seriesDescription: series.attributes.seriesDescription,
            modality: series.modality,
            sopClassUid: series.sopClassUid,
            manufacturer: series.attributes.manufacturer,
            instances: series.numberOfInstances,
            frames: series.numberOfFrames ?? series.numberOfInstances,
            classification: { role: c.role, acquisition: c.acquisition, rule: c.ruleId, reason: c.reason },
            acquisition: {
              scanningSequence: series.attributes.scanningSequence,
              sequenceVariant: series.attributes.sequenceVariant,
              mrAcquisitionType: series.attributes.mrAcquisitionType,
              repetitionTime: series.attributes.repetitionTime,
              echoTime: series.attributes.echoTime,
              inversionTime: series.attributes.inversionTime,
              flipAngle: series.attributes.flipAngle,
              sliceThickness: series.attributes.sliceThickness,
            },
            geometry: {
              dims: a.volume.dims,
              spacingMm: spacingOf(a.volume.affine),
              sliceSpacingMm: a.sliceSpacing,
              orientation: orientationCode(a.volume.affine),
              affineLps: a.volume.affine,
              tiltDegrees: a.tiltDegrees,
              maxPositionResidualMm: a.maxPositionResidualMm,
              frameOfReferenceUid: a.frameOfReferenceUid,
            },
            warnings: a.warnings,
            convertedBy: 'ms-lesion-service dicom2nifti',
          };
          const json = join(dir, `${label}.json`);
          await writeFile(`${json}.partial`, JSON.stringify(sidecar, null, 2) + '\n');
          await rename(`${json}.partial`, json);
          converted.push({
            file,
            seriesInstanceUid: series.seriesInstanceUid,
            role: c.role,
            acquisition: c.acquisition,
            dims: a.volume.dims,
          });
          if (!values.json) io.out(`${file}  ${c.role} ${c.acquisition} ${a.volume.dims.join('×')}`);
        } catch (e) {
          if (!isDomainError(e)) throw e;
          failed.push({ seriesInstanceUid: series.seriesInstanceUid, code: e.code, message: e.message });
          io.err(`${label}: not converted: ${e.code}: ${e.message}`);
        }
      }
    }
    if (values.json) io.out(JSON.stringify({ converted, failed }, null, 2));
    return converted.length > 0 ? 0 : 1;
  } catch (e) {
    return failed('dicom2nifti', io, e);
  }
}
