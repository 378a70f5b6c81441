import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, REDACTED, scrub } from './logger.ts';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

it('never writes patient identifiers, names or credentials, at any depth', () => {
  const c = capture();
  const log = createLogger({ level: 'info', destination: c.stream });
  log.info(
    {
      analysisId: 'a1',
      patientId: 'MRN-123456',
      order: { patientId: 'MRN-123456', patientIdSystem: 'urn:oid:1.2.3', studyInstanceUid: '1.2.3' },
      study: {
        PatientName: 'Doe^Jane',
        patient_birth_date: '19800101',
        series: [{ '00100010': { vr: 'PN' } }],
      },
      headers: { Authorization: 'Bearer abc.def', accept: 'application/json' },
      pacs: { password: 'hunter2' },
    },
    'analysis queued',
  );
  log.debug({ patientId: 'MRN-1' }, 'below level');
  const lines = c.lines();
  assert.equal(lines.length, 1);
  const text = JSON.stringify(lines[0]);
  for (const secret of ['MRN-123456', 'Doe^Jane', '19800101', 'abc.def', 'hunter2', '"PN"'])
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  const line = lines[0] as {
    order: Record<string, unknown>;
    headers: Record<string, unknown>;
    level: string;
  };
  assert.equal(line.order.patientId, REDACTED);
  assert.equal(line.order.studyInstanceUid, '1.2.3');
  assert.equal(line.order.patientIdSystem, 'urn:oid:1.2.3');
  assert.equal(line.headers.accept, 'application/json');
  assert.equal(line.level, 'info');
  assert.equal(lines[0].msg, 'analysis queued');
  assert.equal(lines[0].service, 'ms-lesion-service');
});

it('scrubs errors and arrays without touching the input', () => {
  const input = { list: [{ name: 'Jane' }], err: Object.assign(new Error('boom'), { patientId: 'X' }) };
  const out = scrub(input) as { list: { name: string }[]; err: Record<string, unknown> };
  assert.equal(out.list[0].name, REDACTED);
  assert.equal(out.err.message, 'boom');
  assert.equal(out.err.patientId, REDACTED);
  assert.equal(input.list[0].name, 'Jane');
});
