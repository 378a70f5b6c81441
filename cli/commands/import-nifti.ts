/**
 * `mslesion import-nifti --flair F [--t2 F] [--t1 F] [--t1c F] --patient-id ID --study-date YYYYMMDD
 *                        [--patient-name N] [--birth-date YYYYMMDD] [--sex M|F|O] [--study-uid UID]
 *                        [--study-description D] [--accession A] --out DIR
 *                        [--stow URL] [--user U --password P | --token T] [--json]`
 *
 * Research import: co-registered NIfTI volumes of one session → one MR DICOM study (classic MR Image Storage,
 * one series per input, geometry exact, float voxels as int16 × RescaleSlope, UIDs under 2.25 derived from
 * the inputs so a re-import gives the same UIDs) written to <DIR>/<NN>_<contrast>/, and optionally stored to a
 * PACS with STOW-RS. The password/token may come from MSLESION_PACS_PASSWORD / MSLESION_PACS_TOKEN instead
 * of the command line. Patient data go into the DICOM files only, never to the output.
 * Exit codes: 0 ok, 1 a coded failure (or an instance the PACS refused), 2 usage.
 */
import { parseArgs } from 'node:util';
import {
  buildResearchStudy,
  writeStudyFolder,
  type ImportVolume,
} from '../../adapters/dicom/research-import.ts';
import type { MrContrast } from '../../adapters/dicom/mr-writer.ts';
import { DicomWebClient, type DicomWebAuth } from '../../adapters/dicomweb/client.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { failed, usage, type CommandIo } from '../wiring/command.ts';

const HELP = `usage: mslesion import-nifti --flair F.nii.gz [--t2 F] [--t1 F] [--t1c F] --patient-id ID --study-date YYYYMMDD --out DIR [options]
options:
  --patient-name NAME      DICOM person name (Family^Given)
  --birth-date YYYYMMDD    --sex M|F|O
  --study-uid UID          use this StudyInstanceUID (default: derived from the inputs, under 2.25)
  --study-description D    --accession A
  --stow URL               also store the study in a PACS (DICOMweb base URL, e.g. http://pacs/dicom-web)
  --user U --password P    basic auth for --stow (or MSLESION_PACS_PASSWORD)
  --token T                bearer token for --stow (or MSLESION_PACS_TOKEN)
  --json                   print a JSON summary`;

const INPUTS: readonly [string, MrContrast][] = [
  ['flair', 'FLAIR'],
  ['t2', 'T2'],
  ['t1', 'T1'],
  ['t1c', 'T1C'],
];

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        flair: { type: 'string' },
        t2: { type: 'string' },
        t1: { type: 'string' },
        t1c: { type: 'string' },
        'patient-id': { type: 'string' },
        'patient-name': { type: 'string' },
        'birth-date': { type: 'string' },
        sex: { type: 'string' },
        'study-date': { type: 'string' },
        'study-time': { type: 'string' },
        'study-uid': { type: 'string' },
        'study-description': { type: 'string' },
        accession: { type: 'string' },
        out: { type: 'string' },
        stow: { type: 'string' },
        user: { type: 'string' },
        password: { type: 'string' },
        token: { type: 'string' },
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
    if (values['patient-id'] === undefined) throw usage('--patient-id is required');
    if (values['study-date'] === undefined) throw usage('--study-date is required (YYYYMMDD)');
    if (values.out === undefined) throw usage('--out is required');
    if (values.sex !== undefined && !['M', 'F', 'O'].includes(values.sex))
      throw usage('--sex must be M, F or O');
    if (values.stow === undefined && (values.user ?? values.password ?? values.token) !== undefined)
      throw usage('--user/--password/--token need --stow');
    if (values.token !== undefined && values.user !== undefined)
      throw usage('give --user/--password or --token, not both');
  } catch (e) {
    io.err(`mslesion import-nifti: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }
  try {
    const volumes: ImportVolume[] = [];
    for (const [flag, contrast] of INPUTS) {
      const path = values[flag as 'flair'];
      if (path === undefined) continue;
      io.progress(`reading ${contrast} ${path}`);
      const nifti = await readNifti(path);
      volumes.push({ contrast, volume: nifti.volume, source: path.split('/').pop() ?? path });
    }
    const sex = values.sex as 'M' | 'F' | 'O' | undefined;
    const study = buildResearchStudy(volumes, {
      patientId: values['patient-id'],
      studyDate: values['study-date'],
      ...(values['patient-name'] === undefined ? {} : { patientName: values['patient-name'] }),
      ...(values['birth-date'] === undefined ? {} : { patientBirthDate: values['birth-date'] }),
      ...(sex === undefined ? {} : { patientSex: sex }),
      ...(values['study-time'] === undefined ? {} : { studyTime: values['study-time'] }),
      ...(values['study-uid'] === undefined ? {} : { studyInstanceUid: values['study-uid'] }),
      ...(values['study-description'] === undefined ? {} : { studyDescription: values['study-description'] }),
      ...(values.accession === undefined ? {} : { accessionNumber: values.accession }),
    });
    const folders = await writeStudyFolder(study, values.out);
    const summary = {
      studyInstanceUid: study.studyInstanceUid,
      out: values.out,
      series: study.series.map((s, x) => ({
        contrast: s.contrast,
        seriesNumber: s.seriesNumber,
        seriesInstanceUid: s.seriesInstanceUid,
        instances: s.instances.length,
        folder: folders[x],
      })),
      stow: undefined as undefined | { url: string; stored: number; refused: number },
    };
    let exit = 0;
    if (values.stow !== undefined) {
      const password = values.password ?? process.env.MSLESION_PACS_PASSWORD;
      const token = values.token ?? process.env.MSLESION_PACS_TOKEN;
      const auth: DicomWebAuth =
        values.user !== undefined
          ? { username: values.user, password: password ?? '' }
          : token !== undefined
            ? { token }
            : undefined;
      const client = new DicomWebClient({ url: values.stow, auth });
      let stored = 0;
      let refused = 0;
      for (const s of study.series) {
        for (let x = 0; x < s.instances.length; x += 50) {
          const r = await client.stowInstances(s.instances.slice(x, x + 50), study.studyInstanceUid);
          for (const i of r.instances) {
            if (i.stored) stored++;
            else {
              refused++;
              io.err(
                `not stored: ${i.sopInstanceUid ?? '?'}: ${i.error?.code ?? ''}: ${i.error?.message ?? ''}`,
              );
            }
          }
          io.progress(`STOW ${s.contrast}: ${Math.min(x + 50, s.instances.length)}/${s.instances.length}`);
        }
      }
      summary.stow = { url: values.stow, stored, refused };
      if (refused > 0) exit = 1;
    }
    if (values.json) io.out(JSON.stringify(summary, null, 2));
    else {
      io.out(`study ${study.studyInstanceUid} → ${values.out}`);
      for (const s of summary.series)
        io.out(`  ${s.seriesNumber} ${s.contrast}: ${s.instances} instances, series ${s.seriesInstanceUid}`);
      if (summary.stow !== undefined)
        io.out(
          `  STOW-RS ${summary.stow.url}: ${summary.stow.stored} stored, ${summary.stow.refused} refused`,
        );
    }
    return exit;
  } catch (e) {
    return failed('import-nifti', io, e);
  }
}
