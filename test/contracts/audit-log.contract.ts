/** The AuditLog contract, run against every adapter (SQLite in adapters/audit, PostgreSQL in test/integration). */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from '@medplum/fhirtypes';
import type { AuditLog, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import { fhirErrors } from '../../adapters/fhir/validation.ts';

export interface AuditHarness {
  readonly log: AuditLog & { auditEvents(limit?: number): Promise<readonly unknown[]> };
  cleanup(): Promise<void>;
}

export const sampleRead: AuditRecord = {
  recorded: '2026-03-02T10:00:00.000Z',
  action: 'R',
  interaction: 'search',
  outcome: '0',
  agent: { who: 'ehr-client', network: '127.0.0.1' },
  source: 'fhir',
  entities: [{ reference: 'Observation/abc' }, { query: 'Observation?subject=Patient/p1' }],
  patient: { id: 'p1', system: 'urn:ms-lesion-service:patient-resource-id' },
  requestId: 'req-1',
};

export function auditLogContract(name: string, open: () => Promise<AuditHarness>): void {
  it(`AuditLog ${name}: stores records as valid FHIR AuditEvents, lists them by patient and time, newest first`, async () => {
    const h = await open();
    const log = h.log;
    try {
      await log.record(sampleRead);
      await log.record({
        ...sampleRead,
        recorded: '2026-03-02T10:00:01.000Z',
        action: 'C',
        interaction: 'create',
        patient: { id: 'p2' },
      });
      await log.record({
        ...sampleRead,
        recorded: '2026-03-02T10:00:02.000Z',
        outcome: '4',
        outcomeDescription: 'AUTH.INSUFFICIENT_SCOPE',
        source: 'hl7v2',
        entities: [],
      });
      assert.equal((await log.list({ limit: 10 })).length, 3);
      assert.equal((await log.list({ limit: 2 })).length, 2);
      const p1 = await log.list({ patientId: 'p1', limit: 10 });
      assert.deepEqual(
        p1.map((r) => r.outcome),
        ['4', '0'],
      );
      assert.deepEqual(p1[1], sampleRead);
      assert.equal((await log.list({ since: '2026-03-02T10:00:01.000Z', limit: 10 })).length, 2);
      const events = await log.auditEvents();
      assert.equal(events.length, 3);
      for (const e of events) assert.deepEqual(fhirErrors(e as Resource), []);
    } finally {
      await h.cleanup();
    }
  });
}
