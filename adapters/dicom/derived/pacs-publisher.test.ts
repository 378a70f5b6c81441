/**
 * Publisher logic around the STOW client: batching, study URL, and turning refused instances into
 * PACS.STORE_FAILED. The STOW side is a recording test double here; test/integration/pacs-publish.test.ts
 * runs the same publisher against a real Orthanc.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { DomainError } from '../../../domain/errors.ts';
import type { PublishRequest } from '../../../domain/ports/pacs-publisher.port.ts';
import type { StowResult } from '../../dicomweb/client.ts';
import { scanPart10 } from '../part10.ts';
import { loadSampleCase } from '../../report/testing/sample-case.ts';
import { buildDerivedObjects, DicomWebPacsPublisher, type StowClient } from './pacs-publisher.ts';

class RecordingStow implements StowClient {
  readonly calls: { count: number; bytes: number; study: string | undefined }[] = [];
  refuse = new Set<string>();

  stowInstances(instances: readonly Uint8Array[], studyInstanceUid?: string): Promise<StowResult> {
    this.calls.push({
      count: instances.length,
      bytes: instances.reduce((a, b) => a + b.length, 0),
      study: studyInstanceUid,
    });
    return Promise.resolve({
      instances: instances.map((b) => {
        const v = scanPart10(b).values;
        const uid = v.SOPInstanceUID ?? '';
        return this.refuse.has(uid)
          ? {
              sopInstanceUid: uid,
              stored: false,
              failureReason: 0xa700,
              error: { code: 'PACS.STORE_FAILED', message: 'out of resources' },
            }
          : { sopInstanceUid: uid, stored: true };
      }),
    });
  }
}

describe('DicomWebPacsPublisher', () => {
  let request: PublishRequest;
  before(async () => {
    const c = await loadSampleCase({ withPrior: true });
    request = {
      analysisId: c.context.analysisId,
      study: c.study,
      flair: {
        volume: c.flair,
        series: c.study.series[0],
        slices: c.context.flairSlices,
        frameOfReferenceUid: c.context.flairSlices[0].frameOfReferenceUid!,
      },
      mask: c.mask,
      changeMask: c.changeMask!,
      result: c.result,
      createdAt: '2026-03-02T09:04:10.000Z',
    };
  });

  test('stores every object under the study in bounded batches and reports the series', async () => {
    const stow = new RecordingStow();
    const receipt = await new DicomWebPacsPublisher({ stow, maxInstancesPerRequest: 10 }).publish(request);
    const built = buildDerivedObjects(request);
    assert.equal(receipt.instances, built.objects.length);
    assert.deepEqual(
      receipt.series.map((s) => s.kind),
      ['SEG', 'SR', 'SC'],
    ); // no PDF without reportPdf
    assert.equal(
      stow.calls.reduce((a, c) => a + c.count, 0),
      built.objects.length,
    );
    assert.ok(stow.calls.every((c) => c.count <= 10 && c.study === request.study.studyInstanceUid));
    assert.deepEqual(
      receipt.series.flatMap((s) => s.sopInstanceUids),
      built.objects.map((o) => o.sopInstanceUid),
    );
  });

  test('refused instances become PACS.STORE_FAILED with their UIDs', async () => {
    const stow = new RecordingStow();
    const seg = buildDerivedObjects({ ...request, kinds: ['SEG'] }).objects[0];
    stow.refuse.add(seg.sopInstanceUid);
    await assert.rejects(
      new DicomWebPacsPublisher({ stow }).publish({ ...request, kinds: ['SEG', 'SR'] }),
      (e: unknown) =>
        e instanceof DomainError &&
        e.code === 'PACS.STORE_FAILED' &&
        JSON.stringify(e.details).includes(seg.sopInstanceUid),
    );
  });
});
