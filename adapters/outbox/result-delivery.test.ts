import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Hl7Message } from '@medplum/core';
import type { Bundle } from '@medplum/fhirtypes';
import type { DeliveryStatus } from '../../domain/model/analysis.ts';
import { systemClock } from '../clock/system-clock.ts';
import { sampleAnalysis, sampleStudy } from '../fhir/testing/sample-analysis.ts';
import { fhirErrors } from '../fhir/validation.ts';
import { OutboxResultDelivery } from './result-delivery.ts';
import { SqliteOutbox } from './sqlite/sqlite-outbox.ts';

it('queues a valid bundle and an ORU once per analysis; new results replace them', async () => {
  const outbox = new SqliteOutbox({ path: ':memory:' });
  const recorded: DeliveryStatus[] = [];
  const delivery = new OutboxResultDelivery({
    outbox,
    clock: systemClock,
    fhir: { serverBase: 'https://ehr.example/fhir' },
    hl7v2: { receivingApplication: 'EHR' },
    recorder: { record: (_id, s) => Promise.resolve(void recorded.push(s)) },
  });
  assert.deepEqual(delivery.channels, ['fhir', 'hl7v2']);
  const analysis = sampleAnalysis();
  const input = { analysis, study: sampleStudy(), pdf: new TextEncoder().encode('%PDF-1.4') };
  const first = await delivery.deliver(input);
  assert.deepEqual(
    first.map((s) => [s.channel, s.state]),
    [
      ['fhir', 'pending'],
      ['hl7v2', 'pending'],
    ],
  );
  assert.equal(recorded.length, 2);
  // the analysis as the store now holds it (the recorder wrote the statuses)
  const queued = { ...analysis, delivery: first };
  await delivery.deliver({ ...input, analysis: queued });
  assert.equal(recorded.length, 2, 'same results: nothing new queued');
  // queued but never recorded on the analysis (the recording failed): queueing again records the status only
  await delivery.deliver(input);
  assert.equal(recorded.length, 4, 'the missing statuses are recorded');
  assert.deepEqual(recorded.slice(2), first);
  assert.equal((await outbox.countByState()).pending, 2, 'and nothing is queued twice');
  recorded.length = 2;
  const [fhir, hl7] = await outbox.listByAnalysis(analysis.id);
  const bundle = JSON.parse(fhir.payload) as Bundle;
  assert.deepEqual(fhirErrors(bundle), []);
  assert.equal(bundle.entry?.[0]?.fullUrl?.startsWith('https://ehr.example/fhir/'), true);
  assert.equal(Hl7Message.parse(hl7.payload).getSegment('MSH')?.getField(9).toString(), 'ORU^R01^ORU_R01');
  const rerun = { ...queued, finishedAt: '2026-03-03T08:00:00.000Z' };
  await delivery.deliver({ ...input, analysis: rerun });
  assert.equal(recorded.length, 4, 'new results are queued again');
  assert.equal((await outbox.countByState()).pending, 2);
  await outbox.close();
});
