/**
 * DICOMweb against a real Orthanc (test/helpers/orthanc.ts): the real series of test/fixtures/dicom are stored
 * with STOW-RS, found with QIDO-RS, retrieved with WADO-RS and built into volumes identical to those read
 * from the files directly; a compressed (RLE) series comes back transcoded; a research-import study goes
 * through loadStudyInputs; and the bad inputs get their codes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DicomWebClient } from '../../adapters/dicomweb/client.ts';
import { DicomWebImageSource } from '../../adapters/dicomweb/dicomweb-source.ts';
import { FolderImageSource } from '../../adapters/dicom/folder-source.ts';
import { run as importNifti } from '../../cli/commands/import-nifti.ts';
import { buildResearchStudy } from '../../adapters/dicom/research-import.ts';
import { defaultSeriesRules } from '../../adapters/dicom/series-rules-file.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { DomainError } from '../../domain/errors.ts';
import { assembleVolume } from '../../domain/imaging/assemble.ts';
import { affineMaxDiff, orientationCode } from '../../domain/model/geometry.ts';
import { reorient, toFloat32 } from '../../domain/model/volume.ts';
import { loadStudyInputs } from '../../domain/use-cases/load-study.ts';
import { DICOM_FIXTURES, dicomSeriesDir, openMs } from '../helpers/fixtures.ts';
import { freePort, startOrthanc, type OrthancHandle } from '../helpers/orthanc.ts';

async function filesOf(dir: string): Promise<Uint8Array[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (n) => new Uint8Array(await readFile(join(dir, n)))));
}

function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof DomainError, `expected DomainError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

describe('DICOMweb with a real Orthanc', () => {
  let pacs: OrthancHandle;
  let client: DicomWebClient;
  let source: DicomWebImageSource;
  let scratch: string;
  const studyOf = new Map<string, string>();

  before(async () => {
    pacs = await startOrthanc();
    client = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    source = new DicomWebImageSource(client);
    scratch = await mkdtemp(join(tmpdir(), 'dicomweb-'));
  });

  after(async () => {
    await pacs.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  test('STOW-RS stores every instance of the real series', async () => {
    for (const name of DICOM_FIXTURES) {
      const files = await filesOf(dicomSeriesDir(name));
      const result = await client.stowInstances(files);
      assert.equal(result.instances.length, files.length);
      assert.ok(
        result.instances.every((x) => x.stored),
        `${name}: ${JSON.stringify(result.instances.find((x) => !x.stored))}`,
      );
      const local = new FolderImageSource(dicomSeriesDir(name));
      studyOf.set(name, (await local.listStudies())[0]);
    }
  });

  test('QIDO-RS finds the studies and series; WADO-RS volumes equal those read from the files', async () => {
    const studies = await client.searchStudies();
    assert.equal(studies.length, DICOM_FIXTURES.length);
    for (const name of DICOM_FIXTURES) {
      const uid = studyOf.get(name) ?? '';
      const remote = await source.findStudy(uid);
      const local = await new FolderImageSource(dicomSeriesDir(name)).findStudy(uid);
      assert.equal(remote.series.length, 1);
      const [r] = remote.series;
      const [l] = local.series;
      assert.equal(r.seriesInstanceUid, l.seriesInstanceUid);
      assert.equal(r.numberOfInstances, l.numberOfInstances);
      assert.deepEqual(r.attributes, l.attributes, name);
      assert.equal(remote.patientId, local.patientId);

      const calls: [number, number][] = [];
      const loaded = await source.loadSeries(uid, r.seriesInstanceUid, (done, total) =>
        calls.push([done, total]),
      );
      assert.equal(loaded.slices.length, l.numberOfInstances);
      assert.deepEqual(calls.at(-1), [l.numberOfInstances, l.numberOfInstances]);
      assert.ok(
        calls.every(([d], x) => x === 0 || d >= calls[x - 1][0]),
        'progress never goes back',
      );
      const a = assembleVolume(loaded.slices);
      const b = assembleVolume(
        (await new FolderImageSource(dicomSeriesDir(name)).loadSeries(uid, l.seriesInstanceUid)).slices,
      );
      assert.deepEqual(a.volume.dims, b.volume.dims);
      assert.equal(affineMaxDiff(a.volume.affine, b.volume.affine), 0);
      assert.deepEqual(a.volume.data, b.volume.data, `${name}: voxels differ`);
    }
  });

  test('a compressed (RLE) series is transcoded by the PACS; read locally it is refused with a code', async () => {
    const src = dicomSeriesDir('siemens_avanto_t1_mprage');
    const dir = join(scratch, 'rle');
    execFileSync('mkdir', ['-p', dir]);
    const names = (await readdir(src)).sort();
    const seriesUid = '1.2.826.0.1.3680043.10.1011.1';
    names.forEach((n, k) => {
      const out = join(dir, n);
      execFileSync('dcmcrle', [join(src, n), out], { stdio: 'ignore' });
      execFileSync(
        'dcmodify',
        [
          '-nb',
          '-m',
          `(0020,000e)=${seriesUid}`,
          '-m',
          `(0008,0018)=${seriesUid}.${k + 1}`,
          '-m',
          '(0020,0011)=99',
          out,
        ],
        { stdio: 'ignore' },
      );
    });
    const compressed = await filesOf(dir);
    assert.equal(
      new TextDecoder().decode(compressed[0].subarray(0, 400)).includes('1.2.840.10008.1.2.5'),
      true,
    );
    const local = new FolderImageSource(dir);
    const uid = studyOf.get('siemens_avanto_t1_mprage') ?? '';
    await assert.rejects(local.loadSeries(uid, seriesUid), isCode('DICOM.COMPRESSED_UNSUPPORTED'));

    const stored = await client.stowInstances(compressed);
    assert.ok(stored.instances.every((x) => x.stored));
    const remote = assembleVolume((await source.loadSeries(uid, seriesUid)).slices);
    const original = assembleVolume(
      (
        await new FolderImageSource(src).loadSeries(
          uid,
          (await new FolderImageSource(src).findStudy(uid)).series[0].seriesInstanceUid,
        )
      ).slices,
    );
    assert.deepEqual(remote.volume.data, original.volume.data);
  });

  test('loadStudyInputs pulls a research-import study from the PACS: FLAIR, T2 and T1 volumes', async () => {
    const vols = await Promise.all(
      (['FLAIR', 'T2', 'T1'] as const).map(async (c) => ({
        contrast: c,
        volume: (await readNifti(openMs('cross_sectional', 'patient26', `${c}.nii.gz`))).volume,
      })),
    );
    const study = buildResearchStudy(vols, { patientId: 'MSL-TEST-26', studyDate: '20240105' });
    for (const s of study.series) {
      const r = await client.stowInstances(s.instances);
      assert.ok(r.instances.every((x) => x.stored));
    }
    const steps = new Set<string>();
    let last = 0;
    const inputs = await loadStudyInputs(
      { images: source, rules: defaultSeriesRules() },
      study.studyInstanceUid,
      (f, step) => {
        assert.ok(f >= last - 1e-9, 'progress never goes back');
        last = f;
        steps.add(step);
      },
    );
    assert.equal(last, 1);
    assert.ok(steps.has('load FLAIR') && steps.has('load T2') && steps.has('load T1'));
    assert.deepEqual(
      inputs.findings.map((f) => [f.role, f.selected]),
      [
        ['FLAIR', true],
        ['T2', true],
        ['T1', true],
      ],
    );
    for (const [role, loaded] of [
      ['FLAIR', inputs.flair],
      ['T2', inputs.t2],
      ['T1', inputs.t1],
    ] as const) {
      assert.ok(loaded !== undefined, role);
      const original = toFloat32(vols.find((v) => v.contrast === role)?.volume ?? vols[0].volume);
      const back = reorient(loaded.volume, orientationCode(original.affine));
      assert.ok(affineMaxDiff(back.affine, original.affine) <= 1e-3);
      let maxAbs = 0;
      let maxErr = 0;
      for (let x = 0; x < original.data.length; x++) {
        maxAbs = Math.max(maxAbs, Math.abs(original.data[x]));
        maxErr = Math.max(maxErr, Math.abs(original.data[x] - back.data[x]));
      }
      // half the rescale slope (max|v| / 32767, rounded to a 16-character DS) plus float32 rounding
      const bound = (maxAbs / 65534) * 1.001 + 1e-6;
      assert.ok(maxErr <= bound, `${role}: error ${maxErr} > int16 quantisation ${bound}`);
      assert.equal(loaded.slices.length, loaded.volume.dims[2]);
      assert.ok(loaded.frameOfReferenceUid !== undefined);
    }
  });

  test('a study without FLAIR, a wrong-modality study and an unknown study are refused with codes', async () => {
    await assert.rejects(
      loadStudyInputs(
        { images: source, rules: defaultSeriesRules() },
        studyOf.get('philips_ingenia_t1_mprage') ?? '',
      ),
      (e: unknown) => {
        isCode('SERIES.NO_FLAIR')(e);
        const findings = (e as DomainError).details.findings as { role: string }[];
        assert.deepEqual(
          findings.map((f) => f.role),
          ['T1'],
        );
        return true;
      },
    );
    // the Siemens series relabelled as CT, in a study of its own
    const src = dicomSeriesDir('siemens_avanto_t1_mprage');
    const dir = join(scratch, 'ct');
    execFileSync('mkdir', ['-p', dir]);
    const ctStudy = '1.2.826.0.1.3680043.10.1011.2';
    for (const [k, n] of (await readdir(src)).sort().entries()) {
      execFileSync('cp', [join(src, n), join(dir, n)]);
      execFileSync('chmod', ['u+w', join(dir, n)]);
      execFileSync(
        'dcmodify',
        [
          '-nb',
          '-m',
          '(0008,0060)=CT',
          '-m',
          `(0020,000d)=${ctStudy}`,
          '-m',
          `(0020,000e)=${ctStudy}.1`,
          '-m',
          `(0008,0018)=${ctStudy}.1.${k + 1}`,
          join(dir, n),
        ],
        { stdio: 'ignore' },
      );
    }
    assert.ok((await client.stowInstances(await filesOf(dir))).instances.every((x) => x.stored));
    await assert.rejects(
      loadStudyInputs({ images: source, rules: defaultSeriesRules() }, ctStudy),
      isCode('STUDY.WRONG_MODALITY'),
    );
    await assert.rejects(source.findStudy('1.2.826.0.1.3680043.10.1011.404'), isCode('STUDY.NOT_FOUND'));
    await assert.rejects(
      source.loadSeries(studyOf.get('ge_fse_pd_axial') ?? '', '1.2.826.0.1.3680043.10.1011.405'),
      isCode('SERIES.NOT_FOUND'),
    );
  });

  test('truncated and non-DICOM parts are refused per instance; good ones beside them are stored', async () => {
    const [good] = await filesOf(dicomSeriesDir('siemens_avanto_t1_mprage'));
    const result = await client.stowInstances([
      good.slice(0, good.length - 5000),
      new TextEncoder().encode('not dicom at all'),
      good,
    ]);
    assert.deepEqual(
      result.instances.map((x) => [x.stored, x.error?.code]),
      [
        [false, 'DICOM.TRUNCATED'],
        [false, 'DICOM.NOT_PART10'],
        [true, undefined],
      ],
    );
    assert.equal(result.instances[0].failureReason, 0xc000);
  });

  test('mslesion import-nifti --stow stores a research study in the PACS', async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const code = await importNifti(
      [
        '--flair',
        openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz'),
        '--patient-id',
        'MSL-CLI-07',
        '--study-date',
        '20240202',
        '--out',
        join(scratch, 'cli-import'),
        '--stow',
        pacs.dicomWebUrl,
        '--user',
        pacs.username,
        '--password',
        pacs.password,
        '--json',
      ],
      { out: (l) => lines.push(l), err: (l) => errors.push(l), progress: () => undefined },
    );
    assert.equal(code, 0, errors.join('\n'));
    const summary = JSON.parse(lines.join('\n')) as {
      studyInstanceUid: string;
      stow: { stored: number; refused: number };
    };
    assert.deepEqual(summary.stow.refused, 0);
    const found = await source.findStudy(summary.studyInstanceUid);
    assert.equal(found.series[0].numberOfInstances, summary.stow.stored);
  });

  test('wrong credentials, an unreachable PACS, a PACS that stalls or answers garbage', async () => {
    const wrong = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: 'nope' },
    });
    await assert.rejects(new DicomWebImageSource(wrong).findStudy('1.2.3'), (e: unknown) => {
      isCode('PACS.AUTH_FAILED')(e);
      assert.equal((e as DomainError).issueType, 'login');
      return true;
    });
    await assert.rejects(
      new DicomWebClient({ url: pacs.dicomWebUrl }).searchStudies(),
      isCode('PACS.AUTH_FAILED'),
    );

    const port = await freePort(); // nothing listens there
    const unreachable = new DicomWebImageSource({
      url: `http://127.0.0.1:${port}/dicom-web`,
      timeoutMs: 2000,
    });
    await assert.rejects(unreachable.findStudy('1.2.3'), (e: unknown) => {
      isCode('PACS.UNREACHABLE')(e);
      assert.equal((e as DomainError).issueType, 'transient');
      return true;
    });

    const stalls: Server = createServer(() => {
      // accept the request, never answer
    });
    const seenAuth: string[] = [];
    const garbage: Server = createServer((req, res) => {
      seenAuth.push(req.headers.authorization ?? '');
      if ((req.url ?? '').includes('/series/')) {
        res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=xyz' });
        res.end('--xyz\r\nContent-Type: application/dicom\r\n\r\nhalf a part and no end');
      } else {
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end('{ this is not json');
      }
    });
    const listen = (s: Server): Promise<number> =>
      new Promise((resolve) => {
        s.listen(0, '127.0.0.1', () => {
          const a = s.address();
          resolve(typeof a === 'object' && a !== null ? a.port : 0);
        });
      });
    const [p1, p2] = [await listen(stalls), await listen(garbage)];
    try {
      const slow = new DicomWebClient({ url: `http://127.0.0.1:${p1}/dicom-web`, timeoutMs: 300 });
      await assert.rejects(slow.searchStudies(), (e: unknown) => {
        isCode('PACS.TIMEOUT')(e);
        assert.equal((e as DomainError).issueType, 'timeout');
        return true;
      });
      const bad = new DicomWebClient({ url: `http://127.0.0.1:${p2}/dicom-web`, timeoutMs: 2000 });
      await assert.rejects(bad.searchStudies(), isCode('PACS.BAD_RESPONSE'));
      await assert.rejects(bad.retrieveSeries('1.2.3', '1.2.3.4'), isCode('PACS.BAD_RESPONSE'));
      const bearer = new DicomWebClient({
        url: `http://127.0.0.1:${p2}/dicom-web`,
        auth: { token: 'tok-123' },
      });
      await assert.rejects(bearer.searchStudies(), isCode('PACS.BAD_RESPONSE'));
      assert.equal(seenAuth.at(-1), 'Bearer tok-123');
    } finally {
      stalls.closeAllConnections();
      garbage.closeAllConnections();
      await new Promise((r) => stalls.close(r));
      await new Promise((r) => garbage.close(r));
    }
    assert.throws(() => new DicomWebClient({ url: 'ftp://pacs/dicom-web' }), isCode('CONFIG.INVALID'));
    await assert.rejects(client.searchSeries('1.2.3/../../x'), isCode('DICOM.INVALID_UID'));
  });
});
