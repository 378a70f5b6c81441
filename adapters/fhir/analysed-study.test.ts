/**
 * The ImagingStudy describes the analysed study, not the objects this service filed into it: a real study
 * folder (research import = the analysed MR series), then the real derived objects (SEG, SR, PDF, overlay SC)
 * of two analyses published into it, read back with the real FolderImageSource.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mat4 } from '../../domain/model/geometry.ts';
import { createVolume } from '../../domain/model/volume.ts';
import type { SeriesDescriptor, StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import { DicomWebPacsPublisher } from '../dicom/derived/pacs-publisher.ts';
import { derivedSeriesUids } from '../dicom/derived/uids.ts';
import { FolderImageSource } from '../dicom/folder-source.ts';
import { FolderStowClient } from '../dicom/folder-stow.ts';
import { buildResearchStudy, writeStudyFolder } from '../dicom/research-import.ts';
import { buildOru } from '../hl7v2/oru.ts';
import { loadSampleCase } from '../report/testing/sample-case.ts';
import {
  analysedStudy,
  isServiceDerivedSeries,
  studyFromAnalysis,
  withoutDerivedSeries,
} from './analysed-study.ts';
import { buildResultBundle } from './result-bundle.ts';
import { SAMPLE_STUDY_UID, sampleAnalysis } from './testing/sample-analysis.ts';

const A = '5b7c1c2e-1f0a-4c1e-9a55-0d6f2b9e7a01';
const B = '5b7c1c2e-1f0a-4c1e-9a55-0d6f2b9e7a02';

function descriptor(uid: string, modality: string, manufacturer?: string): SeriesDescriptor {
  return {
    studyInstanceUid: SAMPLE_STUDY_UID,
    seriesInstanceUid: uid,
    modality,
    numberOfInstances: 1,
    attributes: {
      scanningSequence: [],
      sequenceVariant: [],
      scanOptions: [],
      imageType: [],
      ...(manufacturer === undefined ? {} : { manufacturer }),
    },
  };
}

describe('analysed study (derived series left out)', () => {
  let dir: string;
  let source: FolderImageSource;
  let importedSeries: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'analysed-study-'));
    const flair = createVolume(
      [8, 8, 3],
      mat4([
        [1, 0, 0, -4],
        [0, 1, 0, -4],
        [0, 0, 3, 0],
      ]),
      Float32Array.from({ length: 192 }, (_, x) => 100 + (x % 17)),
    );
    const study = buildResearchStudy([{ contrast: 'FLAIR', volume: flair, source: 'flair.nii.gz' }], {
      patientId: 'MRN-0026',
      studyDate: '20260301',
      studyInstanceUid: SAMPLE_STUDY_UID,
    });
    importedSeries = study.series[0].seriesInstanceUid;
    await writeStudyFolder(study, join(dir, 'study'));
    source = new FolderImageSource(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('re-delivery after the SEG/SR/PDF/overlay series landed gives the same FHIR bundle and ORU', async () => {
    const a = sampleAnalysis({ id: A });
    const deps = { imageSource: source, analysisIdsOfStudy: () => Promise.resolve([A, B]) };
    const first = await analysedStudy(a, deps);
    assert.deepEqual(
      first.series.map((s) => s.seriesInstanceUid),
      [importedSeries],
    );
    const bundleBefore = JSON.stringify(buildResultBundle(a, first));
    const oruBefore = buildOru(a, first);

    // both analyses publish their objects into the study (the sample case's images; the study's attributes,
    // copied into every object, as the pipeline does)
    const c = await loadSampleCase();
    const { series: _series, ...studyFields } = await source.findStudy(SAMPLE_STUDY_UID);
    for (const id of [A, B])
      await new DicomWebPacsPublisher({ stow: new FolderStowClient(join(dir, `derived-${id}`)) }).publish({
        analysisId: id,
        study: { ...studyFields, series: c.study.series },
        flair: {
          volume: c.flair,
          series: c.study.series[0],
          slices: c.context.flairSlices,
          frameOfReferenceUid: c.context.flairSlices[0].frameOfReferenceUid!,
        },
        mask: c.mask,
        result: c.result,
        reportPdf: new TextEncoder().encode('%PDF-1.4\n%%EOF\n'),
        createdAt: '2026-03-02T09:04:10.000Z',
      });
    const inPacs = await source.findStudy(SAMPLE_STUDY_UID);
    assert.deepEqual(inPacs.series.map((s) => s.modality).sort(), [
      'DOC',
      'DOC',
      'MR',
      'OT',
      'OT',
      'SEG',
      'SEG',
      'SR',
      'SR',
    ]);
    // the real objects carry the service's Manufacturer; the research import its own
    assert.ok(
      inPacs.series.every(
        (s) =>
          s.attributes.manufacturer ===
          (s.modality === 'MR' ? 'ms-lesion-service research import' : 'ms-lesion-service'),
      ),
    );

    const again = await analysedStudy(a, deps);
    assert.deepEqual(again, first);
    assert.equal(JSON.stringify(buildResultBundle(a, again)), bundleBefore, 'the FHIR payload is unchanged');
    assert.equal(buildOru(a, again), oruBefore);
    // B's series go by their UIDs, and by the Manufacturer when B is not known here
    const alone = await analysedStudy(a, { imageSource: source });
    assert.deepEqual(alone, first);
  });

  test('the rule: derived UIDs of known analyses, or exactly the service manufacturer; nothing else', () => {
    const [segA] = derivedSeriesUids(A);
    const ownByUid = descriptor(segA, 'SEG'); // a PACS that dropped Manufacturer from its metadata
    const ownByManufacturer = descriptor('1.2.3.4.5', 'SR', 'ms-lesion-service');
    const otherAi = descriptor('1.2.3.4.6', 'SEG', 'Other AI Vendor');
    const imported = descriptor('1.2.3.4.7', 'MR', 'ms-lesion-service research import');
    const scanner = descriptor('1.2.3.4.8', 'MR', 'SIEMENS');
    const uids = new Set(derivedSeriesUids(A));
    assert.equal(isServiceDerivedSeries(ownByUid, uids), true);
    assert.equal(isServiceDerivedSeries(ownByManufacturer, uids), true);
    for (const s of [otherAi, imported, scanner]) assert.equal(isServiceDerivedSeries(s, uids), false);
    const study: StudyDescriptor = {
      studyInstanceUid: SAMPLE_STUDY_UID,
      series: [scanner, ownByUid, otherAi, imported, ownByManufacturer],
    };
    assert.deepEqual(
      withoutDerivedSeries(study, [A]).series.map((s) => s.seriesInstanceUid),
      ['1.2.3.4.8', '1.2.3.4.6', '1.2.3.4.7'],
    );
    // a site whose publisher uses its own root and equipment name
    assert.deepEqual(
      withoutDerivedSeries(study, [A], { uidRoot: '1.2.999', manufacturer: 'Site AI' }).series.length,
      5,
      'a differently configured publisher: only its own UIDs / manufacturer count',
    );
    assert.equal(withoutDerivedSeries({ ...study, series: [scanner] }, [A]).series.length, 1);
  });

  test('when the PACS cannot be read, the study is what the analysis recorded', async () => {
    const a = sampleAnalysis({ id: A });
    const failing = {
      findStudy: () => Promise.reject(new Error('PACS down')),
    };
    assert.deepEqual(await analysedStudy(a, { imageSource: failing }), studyFromAnalysis(a));
    assert.deepEqual(await analysedStudy(a, {}), studyFromAnalysis(a));
  });
});
