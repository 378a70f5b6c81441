import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { DICOM_FIXTURES, dicomSeriesDir } from '../../test/helpers/fixtures.ts';
import { identityOf, imageSlicesOf } from './image.ts';
import { parsePart10, scanPart10, TS } from './part10.ts';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DomainError, `expected a DomainError, got ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

async function firstFile(name: (typeof DICOM_FIXTURES)[number]): Promise<string> {
  const dir = dicomSeriesDir(name);
  return join(dir, (await readdir(dir)).sort()[0]);
}

describe('Part-10 parsing', () => {
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'part10-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  test('the real series parse; identity, transfer syntax and trailing padding are recognised', async () => {
    const expectTs = {
      philips_ingenia_t1_mprage: TS.ExplicitLittle,
      siemens_avanto_t1_mprage: TS.ImplicitLittle,
      ge_fse_pd_axial: TS.ExplicitLittle,
    };
    for (const name of DICOM_FIXTURES) {
      const bytes = await readFile(await firstFile(name));
      const p = parsePart10(bytes);
      assert.equal(p.transferSyntaxUid, expectTs[name]);
      const id = identityOf(p);
      assert.equal(id.modality, 'MR');
      assert.equal(id.sopClassUid, '1.2.840.10008.5.1.4.1.1.4');
      const scan = scanPart10(bytes);
      assert.equal(scan.values.SOPInstanceUID, id.sopInstanceUid);
      assert.equal(scan.values.SeriesInstanceUID, id.seriesInstanceUid);
      const [plane] = imageSlicesOf(p);
      assert.equal(plane.pixels.length, plane.rows * plane.columns);
      if (name === 'ge_fse_pd_axial') {
        // this file carries 2.5 MB of zero bytes after its pixel data: ignored, not parsed as elements
        assert.ok(p.trailingPaddingBytes > 2_000_000, String(p.trailingPaddingBytes));
        assert.equal(Object.keys(p.dataset).includes('00000000'), false);
      }
    }
  });

  test('truncated, non-DICOM and malformed bytes get coded errors', async () => {
    const bytes = new Uint8Array(await readFile(await firstFile('siemens_avanto_t1_mprage')));
    assert.equal(
      code(() => parsePart10(bytes.subarray(0, 10))),
      'DICOM.NOT_PART10',
    );
    assert.equal(
      code(() => parsePart10(new TextEncoder().encode('x'.repeat(500)))),
      'DICOM.NOT_PART10',
    );
    for (const cut of [140, 200, 1000, 5000, bytes.length - 100_000, bytes.length - 1])
      assert.equal(
        code(() => parsePart10(bytes.subarray(0, cut))),
        'DICOM.TRUNCATED',
        `cut at ${cut}`,
      );
    // a bad VR in an explicit-VR data set
    const explicit = new Uint8Array(await readFile(await firstFile('philips_ingenia_t1_mprage')));
    const broken = explicit.slice();
    const start = 132 + new DataView(broken.buffer).getUint32(140, true) + 12; // after the meta group
    broken[start + 4] = 0x01;
    broken[start + 5] = 0x02;
    assert.equal(
      code(() => parsePart10(broken)),
      'DICOM.INVALID',
    );
    // a header-only parse still checks the whole structure
    assert.equal(
      code(() => parsePart10(explicit.subarray(0, explicit.length - 7), { headerOnly: true })),
      'DICOM.TRUNCATED',
    );
  });

  test('implicit, explicit, big endian and deflated encodings decode to the same pixels; RLE is refused', async () => {
    const src = await firstFile('siemens_avanto_t1_mprage');
    const reference = imageSlicesOf(parsePart10(await readFile(src)))[0];
    const variants: [string, string[], string][] = [
      ['explicit', ['+te'], TS.ExplicitLittle],
      ['implicit', ['+ti'], TS.ImplicitLittle],
      ['big', ['+tb'], TS.ExplicitBig],
      ['deflated', ['+td'], TS.DeflatedExplicitLittle],
    ];
    for (const [label, args, ts] of variants) {
      const out = join(scratch, `${label}.dcm`);
      execFileSync('dcmconv', [...args, src, out], { stdio: 'ignore' });
      const p = parsePart10(await readFile(out));
      assert.equal(p.transferSyntaxUid, ts, label);
      const plane = imageSlicesOf(p)[0];
      assert.deepEqual(plane.imagePositionPatient, reference.imagePositionPatient, label);
      assert.deepEqual(plane.pixels, reference.pixels, `${label}: pixels differ`);
    }
    const rle = join(scratch, 'rle.dcm');
    execFileSync('dcmcrle', [src, rle], { stdio: 'ignore' });
    const p = parsePart10(await readFile(rle));
    assert.equal(p.encapsulated, true);
    assert.equal(
      code(() => imageSlicesOf(p)),
      'DICOM.COMPRESSED_UNSUPPORTED',
    );
  });

  test('missing identity or geometry attributes are named in the error', async () => {
    const src = await firstFile('philips_ingenia_t1_mprage');
    const edited = async (name: string, tag: string): Promise<Uint8Array> => {
      const out = join(scratch, name);
      await copyFile(src, out);
      await chmod(out, 0o644);
      execFileSync('dcmodify', ['-nb', '-e', tag, out], { stdio: 'ignore' });
      return new Uint8Array(await readFile(out));
    };
    const noStudy = await edited('nostudy.dcm', '(0020,000d)');
    assert.equal(
      code(() => identityOf(parsePart10(noStudy))),
      'DICOM.MISSING_ATTRIBUTE',
    );
    const noPosition = await edited('nopos.dcm', '(0020,0032)');
    assert.throws(
      () => imageSlicesOf(parsePart10(noPosition)),
      (e: unknown) =>
        e instanceof DomainError &&
        e.code === 'DICOM.MISSING_ATTRIBUTE' &&
        /ImagePositionPatient/.test(e.message),
    );
  });
});
