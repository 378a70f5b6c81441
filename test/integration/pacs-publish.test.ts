/**
 * Results back into a real PACS (Orthanc + DICOMweb plugin): a FLAIR study made from a real case (open_ms
 * patient26, via the classic MR writer) is stored by STOW-RS and loaded back as the pipeline loads it; the
 * SEG, TID 1500 SR, Encapsulated PDF and overlay SC series are built against those very instances and stored by
 * the PacsPublisher; QIDO-RS finds them under the study, the SEG retrieved by WADO-RS decodes to the mask,
 * every stored object passes dciodvfy, and publishing again creates nothing new.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assembleVolume, type AssembledVolume } from '../../domain/imaging/assemble.ts';
import { applyAffine, invert } from '../../domain/model/geometry.ts';
import { createVolume, voxelCount, type Mask, type Volume } from '../../domain/model/volume.ts';
import type { StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import type { PublishRequest } from '../../domain/ports/pacs-publisher.port.ts';
import { DicomWebPacsPublisher } from '../../adapters/dicom/derived/pacs-publisher.ts';
import { readSegmentation } from '../../adapters/dicom/derived/segmentation-reader.ts';
import { dciodvfy, dciodvfyAvailable } from '../../adapters/dicom/derived/testing/dciodvfy.ts';
import { derivedUid } from '../../adapters/dicom/derived/uids.ts';
import { writeClassicMrSeries } from '../../adapters/dicom/mr-writer.ts';
import { DicomWebClient, jsonString } from '../../adapters/dicomweb/client.ts';
import { DicomWebImageSource } from '../../adapters/dicomweb/dicomweb-source.ts';
import { renderReportPdf } from '../../adapters/report/report-pdf.ts';
import { loadSampleCase, type SampleCase } from '../../adapters/report/testing/sample-case.ts';
import { orthancAvailable, startOrthanc, type OrthancHandle } from '../helpers/orthanc.ts';

/** Nearest-neighbour resampling of a mask onto another grid (the DICOM study may reorder the NIfTI's axes). */
function onGrid(mask: Mask, grid: Volume): Mask {
  const toSrc = invert(mask.affine);
  const out = new Uint8Array(voxelCount(grid.dims));
  const [nx, ny, nz] = grid.dims;
  const [sx, sy, sz] = mask.dims;
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        const v = applyAffine(toSrc, applyAffine(grid.affine, [i, j, k]));
        const a = Math.round(v[0]),
          b = Math.round(v[1]),
          c = Math.round(v[2]);
        if (a >= 0 && b >= 0 && c >= 0 && a < sx && b < sy && c < sz)
          out[p] = mask.data[a + sx * (b + sy * c)];
      }
  return createVolume(grid.dims, grid.affine, out);
}

const skip = !orthancAvailable()
  ? 'Orthanc not installed'
  : !dciodvfyAvailable()
    ? 'dciodvfy not installed'
    : false;

describe('publishing results to Orthanc by STOW-RS', { skip }, () => {
  let pacs: OrthancHandle;
  let client: DicomWebClient;
  let sample: SampleCase;
  let study: StudyDescriptor;
  let flair: AssembledVolume;
  let mask: Mask;
  let changeMask: Mask;
  let request: PublishRequest;
  const studyUid = derivedUid('pacs-publish-test', 'study');
  const seriesUid = derivedUid('pacs-publish-test', 'flair');

  before(async () => {
    pacs = await startOrthanc();
    client = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    sample = await loadSampleCase({ withPrior: true });
    const instances = writeClassicMrSeries(
      {
        studyInstanceUid: studyUid,
        patientId: 'OPENMS-26',
        patientName: 'Sample^OpenMS26',
        patientSex: 'F',
        studyDate: '20260301',
        studyTime: '101500',
        accessionNumber: 'SAMPLE26',
        studyDescription: 'MR Brain MS protocol (sample)',
      },
      {
        volume: sample.flair,
        contrast: 'FLAIR',
        seriesNumber: 3,
        seriesInstanceUid: seriesUid,
        frameOfReferenceUid: derivedUid('pacs-publish-test', 'for'),
        sopInstanceUid: (k) => derivedUid('pacs-publish-test', `flair.${k}`),
        seriesDescription: 'AX FLAIR',
      },
    );
    const stored = await client.stowInstances(instances, studyUid);
    assert.ok(stored.instances.every((i) => i.stored));
    // load it back the way the pipeline does
    const source = new DicomWebImageSource(client);
    study = await source.findStudy(studyUid);
    flair = assembleVolume((await source.loadSeries(studyUid, seriesUid)).slices);
    mask = onGrid(sample.mask, flair.volume);
    changeMask = onGrid(sample.changeMask!, flair.volume);
    const pdf = await renderReportPdf({
      analysisId: sample.context.analysisId,
      study,
      result: sample.result,
      flair: flair.volume,
      mask,
      changeMask,
      createdAt: sample.context.createdAt,
    });
    request = {
      analysisId: sample.context.analysisId,
      study,
      flair: {
        volume: flair.volume,
        series: study.series.find((s) => s.seriesInstanceUid === seriesUid)!,
        slices: flair.slices,
        ...(flair.frameOfReferenceUid === undefined
          ? {}
          : { frameOfReferenceUid: flair.frameOfReferenceUid }),
      },
      mask,
      changeMask,
      result: sample.result,
      reportPdf: pdf.pdf,
      createdAt: new Date(sample.context.createdAt).toISOString(),
    };
  });

  after(async () => {
    await pacs.stop();
  });

  test('Orthanc stores SEG, SR, PDF and overlay series; QIDO finds them under the study', async () => {
    const publisher = new DicomWebPacsPublisher({ stow: client });
    const receipt = await publisher.publish(request);
    assert.equal(receipt.studyInstanceUid, studyUid);
    assert.deepEqual(receipt.series.map((s) => s.kind).sort(), ['PDF', 'SC', 'SEG', 'SR']);
    const series = await client.searchSeries(studyUid);
    const byUid = new Map(
      series.map((s) => [jsonString(s, '0020000E') ?? '', jsonString(s, '00080060') ?? '']),
    );
    assert.equal(byUid.get(seriesUid), 'MR');
    const expectModality = { SEG: 'SEG', SR: 'SR', PDF: 'DOC', SC: 'OT' } as const;
    for (const s of receipt.series) {
      assert.equal(byUid.get(s.seriesInstanceUid), expectModality[s.kind], s.kind);
      const instances = await client.searchInstances(studyUid, s.seriesInstanceUid);
      assert.deepEqual(
        instances.map((i) => jsonString(i, '00080018')).sort(),
        [...s.sopInstanceUids].sort(),
        `${s.kind} instances`,
      );
    }
    assert.equal(series.length, 5);
  });

  test('the stored SEG, retrieved by WADO-RS, decodes to the mask; stored objects pass dciodvfy', async () => {
    const segSeries = (await client.searchSeries(studyUid)).find((s) => jsonString(s, '00080060') === 'SEG')!;
    const [seg] = await client.retrieveSeries(studyUid, jsonString(segSeries, '0020000E')!);
    const back = readSegmentation(seg, flair.volume);
    for (const [decoded, want] of [
      [back.segments[0].mask, mask],
      [back.segments[1].mask, changeMask],
    ] as const) {
      let diff = 0;
      for (let p = 0; p < want.data.length; p++) if ((want.data[p] !== 0) !== (decoded.data[p] !== 0)) diff++;
      assert.equal(diff, 0);
    }
    for (const [k, uid] of back.sourceByK) assert.equal(uid, flair.slices[k].sopInstanceUid);
    for (const modality of ['SEG', 'SR', 'DOC', 'OT']) {
      const s = (await client.searchSeries(studyUid)).find((x) => jsonString(x, '00080060') === modality)!;
      const [first] = await client.retrieveSeries(studyUid, jsonString(s, '0020000E')!);
      const r = await dciodvfy(first);
      assert.deepEqual(r.errors, [], `${modality}: ${r.output}`);
    }
  });

  test('publishing the same analysis again creates no new series or instances', async () => {
    const before = await client.searchSeries(studyUid);
    const countInstances = async (): Promise<number> => {
      let n = 0;
      for (const s of await client.searchSeries(studyUid))
        n += (await client.searchInstances(studyUid, jsonString(s, '0020000E')!)).length;
      return n;
    };
    const n0 = await countInstances();
    const receipt = await new DicomWebPacsPublisher({ stow: client }).publish(request);
    assert.equal((await client.searchSeries(studyUid)).length, before.length);
    assert.equal(await countInstances(), n0);
    assert.ok(receipt.instances > 3);
  });
});
