/**
 * HL7 v2 over real MLLP connections: orders sent with @medplum/hl7's Hl7Client to our listener (wired to the
 * real submitOrder with the SQLite store), raw-socket abuse (garbage, bad encoding characters, oversized
 * frames, split frames), and ORU^R01 delivery to a real MLLP peer (@medplum/hl7's Hl7Server) through the
 * outbox — ACK handling, AR/AE, timeouts and retries.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Hl7Message } from '@medplum/core';
import { Hl7Client, Hl7Server, type Hl7MessageEvent } from '@medplum/hl7';
import { isDomainError } from '../../domain/errors.ts';
import { SILENT_LOGGER } from '../../domain/ports/logger.port.ts';
import { submitOrder } from '../../domain/use-cases/submit-order.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { sampleAnalysis, sampleStudy } from '../../adapters/fhir/testing/sample-analysis.ts';
import { CR, FS, mllpFrame, VT } from '../../adapters/hl7v2/mllp.ts';
import { startMllpListener, type MllpListener } from '../../adapters/hl7v2/mllp-listener.ts';
import { HL7_CONTENT_TYPE, MllpSender } from '../../adapters/hl7v2/mllp-sender.ts';
import { buildOru, oruControlId } from '../../adapters/hl7v2/oru.ts';
import { ORM, OMI } from '../../adapters/hl7v2/testing/messages.ts';
import { OutboxDispatcher } from '../../adapters/outbox/dispatcher.ts';
import { SqliteOutbox } from '../../adapters/outbox/sqlite/sqlite-outbox.ts';
import { InProcessJobQueue } from '../../adapters/queue/in-process/in-process-queue.ts';
import { SqliteAnalysisStore } from '../../adapters/store/sqlite/sqlite-store.ts';
import { freePort } from '../helpers/orthanc.ts';

/** Sends raw bytes and collects the frames that come back until `count` arrived (or 5 s). */
async function rawExchange(port: number, bytes: Buffer[], count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const frames: string[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timeout: got ${frames.length} of ${count} frames`));
    }, 5000);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const s = buf.indexOf(VT);
        const e = buf.indexOf(FS);
        if (s < 0 || e < 0 || e + 1 >= buf.length || buf[e + 1] !== CR) break;
        frames.push(buf.subarray(s + 1, e).toString());
        buf = buf.subarray(e + 2);
      }
      if (frames.length >= count) {
        clearTimeout(timer);
        socket.end();
        resolve(frames);
      }
    });
    socket.on('error', reject);
    socket.on('connect', () => {
      (async () => {
        for (const b of bytes) {
          socket.write(b);
          await new Promise((r) => setTimeout(r, 5));
        }
      })().catch(reject);
    });
  });
}

function msa(text: string): [string, string, string] {
  const m = Hl7Message.parse(text);
  const s = m.getSegment('MSA')!;
  return [
    s.getField(1).toString(),
    s.getField(2).toString(),
    m.getSegment('ERR')?.getField(5).getComponent(1) ?? '',
  ];
}

describe('MLLP order listener', () => {
  let store: SqliteAnalysisStore;
  let queue: InProcessJobQueue;
  let listener: MllpListener;

  before(async () => {
    store = new SqliteAnalysisStore({ path: ':memory:' });
    queue = new InProcessJobQueue();
    listener = await startMllpListener({
      port: 0,
      maxMessageBytes: 64 * 1024,
      logger: SILENT_LOGGER,
      assigningAuthorities: { HOSP: 'urn:oid:1.2.3.4.5' },
      handler: (o) => submitOrder({ store, queue, clock: systemClock, logger: SILENT_LOGGER }, o),
    });
  });

  after(async () => {
    await listener.close();
    await queue.close();
    await store.close();
  });

  it('binds to loopback by default', () => {
    assert.equal(listener.host, '127.0.0.1');
  });

  it('ORM^O01 and OMI^O23 from a real HL7 client get AA; a repeated order creates nothing new', async () => {
    const client = new Hl7Client({ host: '127.0.0.1', port: listener.port, keepAlive: true });
    try {
      const a1 = await client.sendAndWait(Hl7Message.parse(ORM({ control: 'IT-1', placer: 'IT-PLC-1' })), {
        timeoutMs: 5000,
      });
      assert.equal(a1.getSegment('MSA')?.getField(1).toString(), 'AA');
      assert.equal(a1.getSegment('MSA')?.getField(2).toString(), 'IT-1');
      const a2 = await client.sendAndWait(Hl7Message.parse(ORM({ control: 'IT-2', placer: 'IT-PLC-1' })), {
        timeoutMs: 5000,
      });
      assert.equal(a2.getSegment('MSA')?.getField(1).toString(), 'AA');
      const a3 = await client.sendAndWait(Hl7Message.parse(OMI({ control: 'IT-3', placer: 'IT-PLC-2' })), {
        timeoutMs: 5000,
      });
      assert.equal(a3.getSegment('MSA')?.getField(1).toString(), 'AA');
      const bad = await client.sendAndWait(
        Hl7Message.parse(ORM({ control: 'IT-4', placer: 'IT-PLC-3', withoutPid: true })),
        {
          timeoutMs: 5000,
        },
      );
      assert.equal(bad.getSegment('MSA')?.getField(1).toString(), 'AE');
      assert.equal(bad.getSegment('ERR')?.getField(5).getComponent(1), 'HL7.MISSING_SEGMENT');
    } finally {
      await client.close();
    }
    const page = await store.list({ limit: 10, offset: 0 });
    assert.equal(page.total, 2);
    const byPlacer = await store.findByPlacerOrderNumber('IT-PLC-1');
    assert.equal(byPlacer?.order.source, 'hl7v2');
    assert.equal(byPlacer.order.patientIdSystem, 'urn:oid:1.2.3.4.5');
  });

  it('garbage, bad encoding characters, oversized and split frames: coded NAKs, the listener keeps serving', async () => {
    const huge = ORM({ control: 'BIG-1', placer: 'BIG' }) + '\rNTE|1||' + 'x'.repeat(200_000);
    const good = mllpFrame(Buffer.from(ORM({ control: 'OK-1', placer: 'IT-PLC-9' })));
    const frames = await rawExchange(
      listener.port,
      [
        Buffer.from('noise before any frame'),
        mllpFrame(Buffer.from('this is not HL7')),
        mllpFrame(Buffer.from('MSH|^^\\&|A|B')),
        mllpFrame(Buffer.from(huge)),
        good.subarray(0, 17),
        good.subarray(17),
      ],
      4,
    );
    assert.deepEqual(msa(frames[0]), ['AR', '', 'HL7.NOT_A_MESSAGE']);
    assert.deepEqual(msa(frames[1]), ['AR', '', 'HL7.BAD_ENCODING_CHARACTERS']);
    assert.deepEqual(msa(frames[2]), ['AR', 'BIG-1', 'HL7.MESSAGE_TOO_LARGE']);
    assert.deepEqual(msa(frames[3]), ['AA', 'OK-1', '']);
    assert.ok(await store.findByPlacerOrderNumber('IT-PLC-9'));
    assert.equal(await store.findByPlacerOrderNumber('BIG'), undefined);
  });
});

describe('ORU^R01 to a real MLLP peer through the outbox', () => {
  let peer: Hl7Server;
  let port: number;
  const received: string[] = [];
  /** How the peer answers the next messages ('AA' when empty). */
  const script: ('AA' | 'AE' | 'AR' | 'silent')[] = [];

  before(async () => {
    port = await freePort();
    peer = new Hl7Server((connection) => {
      connection.addEventListener('message', ({ message }: Hl7MessageEvent) => {
        received.push(message.toString());
        const how = script.shift() ?? 'AA';
        if (how === 'silent') return;
        connection.send(message.buildAck({ ackCode: how }));
      });
    });
    await peer.start(port);
  });

  after(async () => {
    await peer.stop({ forceDrainTimeoutMs: 100 });
  });

  it('delivers the ORU, retries AR and a missing ACK, stops on AE', async () => {
    received.length = 0;
    const analysis = sampleAnalysis({ order: { source: 'hl7v2', placerOrderNumber: 'PLC-ORU' } });
    const oru = buildOru(analysis, sampleStudy(), { receivingApplication: 'EHR', receivingFacility: 'HOSP' });
    const outbox = new SqliteOutbox({ path: ':memory:' });
    let now = Date.now();
    const states: string[] = [];
    const dispatcher = new OutboxDispatcher({
      outbox,
      senders: [new MllpSender({ host: '127.0.0.1', port, ackTimeoutMs: 300 })],
      recorder: { record: (_id, s) => Promise.resolve(void states.push(s.state)) },
      clock: { now: () => new Date(now), sleep: () => Promise.resolve() },
      logger: SILENT_LOGGER,
      owner: 'it',
      backoff: { baseMs: 1000, maxMs: 1000, maxAttempts: 5 },
    });
    script.push('AR', 'silent', 'AA');
    await outbox.enqueue(
      { analysisId: analysis.id, channel: 'hl7v2', contentType: HL7_CONTENT_TYPE, payload: oru },
      new Date(now),
    );
    for (let i = 0; i < 5 && !states.includes('delivered'); i++) {
      await dispatcher.runOnce();
      now += 1000;
    }
    assert.deepEqual(states, ['retrying', 'retrying', 'delivered']);
    assert.equal(received.length, 3);
    assert.ok(
      received.every((r) => r === received[0]),
      'identical re-sends',
    );
    const got = Hl7Message.parse(received[0]);
    assert.equal(got.getSegment('MSH')?.getField(10).toString(), oruControlId(analysis.id));
    assert.equal(got.getAllSegments('OBX').length, 15);
    assert.equal(got.getSegment('OBR')?.getField(2).toString(), 'PLC-ORU');

    // AE: the receiver refuses the content — failed for good, no more attempts.
    const other = sampleAnalysis({
      id: '00000000-0000-4000-8000-00000000000a',
      order: { placerOrderNumber: 'PLC-AE' },
    });
    script.push('AE');
    await outbox.enqueue(
      {
        analysisId: other.id,
        channel: 'hl7v2',
        contentType: HL7_CONTENT_TYPE,
        payload: buildOru(other, sampleStudy()),
      },
      new Date(now),
    );
    assert.equal((await dispatcher.runOnce()).failed, 1);
    assert.equal((await outbox.get(`${other.id}:hl7v2`))?.state, 'failed');
    await outbox.close();
  });

  it('no peer listening is a transient error', async () => {
    const closed = await freePort();
    const sender = new MllpSender({
      host: '127.0.0.1',
      port: closed,
      ackTimeoutMs: 300,
      connectTimeoutMs: 500,
    });
    await assert.rejects(
      sender.sendText(buildOru(sampleAnalysis(), sampleStudy())),
      (e) => isDomainError(e) && e.code === 'HL7.DELIVERY_TRANSIENT' && e.issueType === 'transient',
    );
  });
});
