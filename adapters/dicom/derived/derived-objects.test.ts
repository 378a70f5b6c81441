/**
 * The derived DICOM objects built from a real case (open_ms patient26 FLAIR + its expert lesion mask): each
 * passes dciodvfy with 0 errors (and only the documented warnings), the SEG decodes back to the masks exactly,
 * the SR / PDF / SC carry what they must, builds are deterministic, and bad inputs get coded errors.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { DomainError } from '../../../domain/errors.ts';
import { createVolume, emptyMask, type Mask } from '../../../domain/model/volume.ts';
import { loadSampleCase, type SampleCase } from '../../report/testing/sample-case.ts';
import { LESION_RGB } from '../../report/palette.ts';
import { bulk, item, num, seq, str, strs, type Dataset } from '../dataset.ts';
import { parsePart10 } from '../part10.ts';
import { SOP, writePart10 } from './common.ts';
import { buildEncapsulatedPdf } from './encapsulated-pdf.ts';
import { buildMeasurementReport } from './measurement-report.ts';
import { buildOverlaySeries } from './overlay-series.ts';
import { buildSegmentation } from './segmentation.ts';
import { readSegmentation } from './segmentation-reader.ts';
import { dciodvfy, dciodvfyAvailable } from './testing/dciodvfy.ts';
import { checkUidRoot, derivedUid, isValidUid } from './uids.ts';

/** Warnings dciodvfy is allowed to give (see docs/dev-notes/outputs.md). */
const ALLOWED_WARNINGS = [
  /Unrecognized defined term <99MSLS> for value 1 of attribute <Coding Scheme Designator>/,
];

async function assertValid(bytes: Uint8Array, iod: string): Promise<void> {
  const r = await dciodvfy(bytes);
  assert.deepEqual(r.errors, [], r.output);
  assert.equal(r.iod, iod, r.output);
  for (const w of r.warnings)
    assert.ok(
      ALLOWED_WARNINGS.some((re) => re.test(w)),
      `unexpected dciodvfy warning: ${w}`,
    );
}

function countVoxels(m: Mask): number {
  let n = 0;
  for (const v of m.data) if (v !== 0) n++;
  return n;
}

function assertSameMask(a: Mask, b: Mask): void {
  assert.deepEqual(a.dims, b.dims);
  let diff = 0;
  for (let p = 0; p < a.data.length; p++) if ((a.data[p] !== 0) !== (b.data[p] !== 0)) diff++;
  assert.equal(diff, 0, `${diff} voxels differ`);
}

const skip = dciodvfyAvailable() ? false : 'dciodvfy (dicom3tools) not installed';

describe('derived DICOM objects (open_ms patient26)', { skip }, () => {
  let c: SampleCase;
  before(async () => {
    const base = await loadSampleCase({ withPrior: true });
    c = { ...base, context: { ...base.context, study: { ...base.context.study, studyId: '26' } } };
  });

  test('SEG with a change segment: dciodvfy clean, references the FLAIR, decodes back exactly', async () => {
    const changeMask = c.changeMask!;
    const seg = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask, changeMask });
    await assertValid(seg.bytes, 'Segmentation');
    assert.equal(seg.segments, 2);
    const back = readSegmentation(seg.bytes, c.flair);
    assert.equal(back.segments.length, 2);
    assert.equal(back.segments[0].label, 'MS lesions');
    assertSameMask(back.segments[0].mask, c.mask);
    assertSameMask(back.segments[1].mask, changeMask);
    assert.equal(countVoxels(back.segments[0].mask), countVoxels(c.mask));
    assert.equal(back.studyInstanceUid, c.study.studyInstanceUid);
    // each decoded frame names the FLAIR instance of its slice
    for (const [k, uid] of back.sourceByK) assert.equal(uid, c.context.flairSlices[k].sopInstanceUid);

    const d = parsePart10(seg.bytes).dataset;
    assert.equal(str(d, 'Modality'), 'SEG');
    assert.match(str(d, 'SeriesDescription') ?? '', /^AI-generated/);
    assert.equal(str(d, 'FrameOfReferenceUID'), c.context.flairSlices[0].frameOfReferenceUid);
    const s1 = seq(d, 'SegmentSequence')[0];
    assert.equal(str(item(s1, 'SegmentedPropertyTypeCodeSequence')!, 'CodeValue'), '110702');
    assert.equal(str(s1, 'SegmentAlgorithmType'), 'AUTOMATIC');
    const algo = item(s1, 'SegmentationAlgorithmIdentificationSequence')!;
    assert.equal(str(item(algo, 'AlgorithmFamilyCodeSequence')!, 'CodeValue'), '123110');
    assert.equal(str(algo, 'AlgorithmVersion'), c.result.model.version);
    const eq = item(d, 'ContributingEquipmentSequence')!;
    assert.equal(str(item(eq, 'PurposeOfReferenceCodeSequence')!, 'CodeValue'), '109102');
    assert.equal(str(eq, 'ManufacturerModelName'), c.result.model.name);
    const refs = seq(item(d, 'ReferencedSeriesSequence')!, 'ReferencedInstanceSequence');
    assert.equal(refs.length, c.flair.dims[2]);
  });

  test('SEG without a prior: one segment; an empty mask still gives a valid SEG that decodes to nothing', async () => {
    const seg = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask });
    assert.equal(seg.segments, 1);
    assertSameMask(readSegmentation(seg.bytes, c.flair).segments[0].mask, c.mask);
    const empty = buildSegmentation({ ...c.context, flair: c.flair, mask: emptyMask(c.flair) });
    await assertValid(empty.bytes, 'Segmentation');
    assert.equal(empty.frames, 1);
    assert.equal(countVoxels(readSegmentation(empty.bytes, c.flair).segments[0].mask), 0);
  });

  test('SR TID 1500: dciodvfy clean, carries total volume, count, locations, change and the SEG reference', async () => {
    const seg = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask, changeMask: c.changeMask! });
    const sr = buildMeasurementReport({
      ...c.context,
      result: c.result,
      segmentation: {
        sopInstanceUid: seg.sopInstanceUid,
        seriesInstanceUid: seg.seriesInstanceUid,
        hasChangeSegment: true,
      },
    });
    await assertValid(sr.bytes, 'ComprehensiveSR');
    const d = parsePart10(sr.bytes).dataset;
    assert.equal(str(item(d, 'ContentTemplateSequence')!, 'TemplateIdentifier'), '1500');
    const nums = new Map<string, number[]>();
    let segRefs = 0;
    const walk = (items: Dataset[]): void => {
      for (const it of items) {
        const name = item(it, 'ConceptNameCodeSequence');
        const code = name === undefined ? '' : (str(name, 'CodeValue') ?? '');
        if (str(it, 'ValueType') === 'NUM') {
          const v = num(item(it, 'MeasuredValueSequence')!, 'NumericValue')!;
          nums.set(code, [...(nums.get(code) ?? []), v]);
        }
        if (str(it, 'ValueType') === 'IMAGE' && code === '121191') {
          const ref = item(it, 'ReferencedSOPSequence')!;
          assert.equal(str(ref, 'ReferencedSOPInstanceUID'), seg.sopInstanceUid);
          segRefs++;
        }
        walk(seq(it, 'ContentSequence'));
      }
    };
    walk(seq(d, 'ContentSequence'));
    const { lesions, change } = c.result;
    assert.equal(segRefs, 1);
    const volumes = nums.get('118565006')!;
    assert.equal(volumes[0], Math.round(lesions.totalVolumeMl * 1000) / 1000);
    assert.equal(volumes.length, 5); // all lesions + 4 locations
    assert.deepEqual(nums.get('LESIONCOUNT'), [lesions.count, ...Object.values(lesions.countByLocation)]);
    assert.deepEqual(nums.get('NEWCOUNT'), [change!.newCount]);
    assert.deepEqual(nums.get('ENLARGEDCOUNT'), [change!.enlargedCount]);
    assert.deepEqual(nums.get('DISAPPEAREDCOUNT'), [change!.disappearedCount]);
    assert.deepEqual(nums.get('VOLUMECHANGE'), [Math.round(change!.totalVolumeChangeMl * 1000) / 1000]);
    const evidence = seq(item(d, 'CurrentRequestedProcedureEvidenceSequence')!, 'ReferencedSeriesSequence');
    assert.equal(evidence.length, 2);
  });

  test('SR without a prior has no change group', async () => {
    const { change: _c, ...noPrior } = c.result;
    const sr = buildMeasurementReport({ ...c.context, result: noPrior });
    await assertValid(sr.bytes, 'ComprehensiveSR');
    assert.ok(!Buffer.from(sr.bytes).includes('NEWCOUNT'));
  });

  test('Encapsulated PDF: dciodvfy clean and carries the PDF bytes unchanged', async () => {
    const pdf = new TextEncoder().encode('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
    const obj = buildEncapsulatedPdf({ ...c.context, pdf });
    await assertValid(obj.bytes, 'EncapsulatedPDF');
    const d = parsePart10(obj.bytes).dataset;
    assert.equal(str(d, 'MIMETypeOfEncapsulatedDocument'), 'application/pdf');
    assert.equal(num(d, 'EncapsulatedDocumentLength'), pdf.length);
    const doc = new Uint8Array(bulk(d, 'EncapsulatedDocument')[0] ?? new ArrayBuffer(0));
    assert.deepEqual(doc.subarray(0, pdf.length), pdf);
    assert.equal(str(d, 'BurnedInAnnotation'), 'YES');
  });

  test('overlay SC series: one image per lesional slice, dciodvfy clean, outlines and banner burned in', async () => {
    const series = buildOverlaySeries({
      ...c.context,
      flair: c.flair,
      mask: c.mask,
      changeMask: c.changeMask!,
    });
    const lesional = new Set<number>();
    const n = c.flair.dims[0] * c.flair.dims[1];
    for (let p = 0; p < c.mask.data.length; p++) if (c.mask.data[p] !== 0) lesional.add(Math.floor(p / n));
    assert.equal(series.length, lesional.size);
    assert.equal(new Set(series.map((s) => s.seriesInstanceUid)).size, 1);
    await assertValid(series[0].bytes, 'SCImage');
    const largest = c.summary.lesions[0];
    const kMid = Math.floor((largest.bboxMin[2] + largest.bboxMax[2] - 1) / 2);
    const inst = series.find((s) => s.k === kMid)!;
    const d = parsePart10(inst.bytes).dataset;
    assert.equal(str(d, 'BurnedInAnnotation'), 'YES');
    assert.deepEqual(strs(d, 'ImageType'), ['DERIVED', 'SECONDARY']);
    assert.match(str(d, 'ImageComments') ?? '', /NOT FOR DIAGNOSIS/);
    assert.equal(
      str(item(d, 'SourceImageSequence')!, 'ReferencedSOPInstanceUID'),
      c.context.flairSlices[kMid].sopInstanceUid,
    );
    const px = new Uint8Array(bulk(d, 'PixelData')[0]);
    const rows = num(d, 'Rows')!;
    const cols = num(d, 'Columns')!;
    let red = 0;
    let banner = 0;
    for (let p = 0; p < rows * cols; p++) {
      const rgb = [px[3 * p], px[3 * p + 1], px[3 * p + 2]];
      if (rgb[0] === LESION_RGB[0] && rgb[1] === LESION_RGB[1] && rgb[2] === LESION_RGB[2]) red++;
      if (p < cols * 20 && rgb[0] > 200 && rgb[1] > 150 && rgb[2] < 60) banner++;
    }
    assert.ok(red > 20, `lesion outline pixels: ${red}`);
    assert.ok(banner > 50, `banner pixels: ${banner}`);
  });

  test('builds are deterministic: same bytes and UIDs again, other UIDs for another analysis', () => {
    const a = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask });
    const b = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask });
    assert.deepEqual(a.bytes, b.bytes);
    const other = buildSegmentation({
      ...c.context,
      analysisId: 'another-analysis',
      flair: c.flair,
      mask: c.mask,
    });
    assert.notEqual(other.sopInstanceUid, a.sopInstanceUid);
    assert.notEqual(other.seriesInstanceUid, a.seriesInstanceUid);
    const sr1 = buildMeasurementReport({ ...c.context, result: c.result });
    const sr2 = buildMeasurementReport({ ...c.context, result: c.result });
    assert.deepEqual(sr1.bytes, sr2.bytes);
    for (const u of [a.sopInstanceUid, a.seriesInstanceUid, sr1.sopInstanceUid]) assert.ok(isValidUid(u), u);
  });

  test('inconsistent inputs are refused with DICOM.DERIVED_INPUT', () => {
    const code = (e: unknown): boolean => e instanceof DomainError && e.code === 'DICOM.DERIVED_INPUT';
    const small = createVolume([4, 4, 4], c.flair.affine, new Uint8Array(64));
    assert.throws(() => buildSegmentation({ ...c.context, flair: c.flair, mask: small }), code);
    assert.throws(
      () =>
        buildSegmentation({
          ...c.context,
          flairSlices: c.context.flairSlices.slice(1),
          flair: c.flair,
          mask: c.mask,
        }),
      code,
    );
    const noFor = c.context.flairSlices.map((s) => ({ sopInstanceUid: s.sopInstanceUid }));
    assert.throws(
      () => buildSegmentation({ ...c.context, flairSlices: noFor, flair: c.flair, mask: c.mask }),
      code,
    );
    assert.throws(() => buildEncapsulatedPdf({ ...c.context, pdf: new Uint8Array([1, 2, 3]) }), code);
    assert.throws(() => buildOverlaySeries({ ...c.context, flair: c.flair, mask: small }), code);
  });

  test('SEG reader refuses objects that are not segmentations or not on the grid', () => {
    const sr = buildMeasurementReport({ ...c.context, result: c.result });
    assert.throws(
      () => readSegmentation(sr.bytes, c.flair),
      (e: unknown) => e instanceof DomainError && e.code === 'SEG.NOT_SEGMENTATION',
    );
    const seg = buildSegmentation({ ...c.context, flair: c.flair, mask: c.mask });
    const shifted = { ...c.flair, affine: c.flair.affine.map((v, i) => (i === 3 ? v + 0.5 : v)) };
    assert.throws(
      () => readSegmentation(seg.bytes, shifted),
      (e: unknown) => e instanceof DomainError && e.code === 'SEG.GRID_MISMATCH',
    );
    assert.equal(SOP.Segmentation, str(parsePart10(seg.bytes).dataset, 'SOPClassUID'));
  });
});

describe('the dciodvfy check', { skip }, () => {
  test('reports errors for an object that lacks required attributes (so the checks above can fail)', async () => {
    const bare = writePart10({ SOPClassUID: SOP.SecondaryCapture, SOPInstanceUID: '2.25.1', Modality: 'OT' });
    const r = await dciodvfy(bare);
    assert.ok(r.errors.length > 0, r.output);
  });
});

describe('derived UIDs', () => {
  test('2.25 UIDs are valid, deterministic and distinct per role', () => {
    const a = derivedUid('3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c01', 'seg.instance');
    assert.match(a, /^2\.25\.[1-9][0-9]{0,38}$/);
    assert.equal(a, derivedUid('3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c01', 'seg.instance'));
    assert.notEqual(a, derivedUid('3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c01', 'seg.series'));
    assert.ok(BigInt(a.slice(5)) < 2n ** 128n);
  });

  test('a site root gives UIDs under it, at most 64 characters; a bad root is refused', () => {
    const root = '1.2.826.0.1.3680043.10.1234';
    const u = derivedUid('x', 'sr.instance', root);
    assert.ok(u.startsWith(`${root}.`));
    assert.ok(u.length <= 64 && isValidUid(u), u);
    for (const bad of ['1.02.3', 'abc', '1..2', '1.2.'])
      assert.throws(
        () => checkUidRoot(bad),
        (e: unknown) => e instanceof DomainError && e.code === 'DICOM.BAD_UID_ROOT',
      );
  });
});
