import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hl7Message } from '@medplum/core';
import { submitOrder } from '../../domain/use-cases/submit-order.ts';
import { SILENT_LOGGER } from '../../domain/ports/logger.port.ts';
import { SqliteAnalysisStore } from '../store/sqlite/sqlite-store.ts';
import { InProcessJobQueue } from '../queue/in-process/in-process-queue.ts';
import { systemClock } from '../clock/system-clock.ts';
import { sampleAnalysis, sampleStudy } from '../fhir/testing/sample-analysis.ts';
import { SqliteAuditLog } from '../audit/sqlite-audit-log.ts';
import { FolderImageSource } from '../dicom/folder-source.ts';
import { dicomSeriesDir } from '../../test/helpers/fixtures.ts';
import { hl7Escape, hl7Unescape } from './ack.ts';
import { MllpDecoder, mllpFrame, VT, FS, CR } from './mllp.ts';
import { handleInbound, oversizedAck, type MllpListenerOptions } from './mllp-listener.ts';
import { orderFromMessage, parseHl7 } from './orders.ts';
import { buildOru, oruControlId } from './oru.ts';
import { ORM, OMI } from './testing/messages.ts';

const STUDY = '1.2.826.0.1.3680043.8.498.10026';

function collect(max: number): { d: MllpDecoder; got: string[]; big: [string, number][] } {
  const got: string[] = [];
  const big: [string, number][] = [];
  const d = new MllpDecoder({
    maxMessageBytes: max,
    onMessage: (p) => got.push(p.toString()),
    onOversized: (h, n) => big.push([h.toString(), n]),
  });
  return { d, got, big };
}

describe('MLLP framing', () => {
  it('decodes frames split at every byte, ignores junk between frames', () => {
    const wire = Buffer.concat([
      Buffer.from('junk'),
      mllpFrame(Buffer.from('MSH|a')),
      Buffer.from([CR, 0x0a]),
      mllpFrame(Buffer.from('MSH|b\x1cstill b')),
    ]);
    for (let split = 1; split <= wire.length; split++) {
      const { d, got } = collect(1000);
      for (let i = 0; i < wire.length; i += split) d.push(wire.subarray(i, i + split));
      assert.deepEqual(got, ['MSH|a', 'MSH|b\x1cstill b'], `split ${split}`);
    }
  });

  it('cuts off an oversized frame without buffering it, then resumes', () => {
    const { d, got, big } = collect(100);
    const huge = 'MSH|^~\\&|X\r' + 'x'.repeat(10_000);
    const wire = Buffer.concat([mllpFrame(Buffer.from(huge)), mllpFrame(Buffer.from('MSH|ok'))]);
    for (let i = 0; i < wire.length; i += 64) {
      d.push(wire.subarray(i, i + 64));
      assert.ok(d.buffered <= 100 + 64);
    }
    assert.deepEqual(got, ['MSH|ok']);
    assert.equal(big.length, 1);
    assert.equal(big[0][1], huge.length);
    assert.ok(big[0][0].startsWith('MSH|^~\\&|X\r'));
    assert.equal(VT, 0x0b);
    assert.equal(FS, 0x1c);
  });
});

describe('HL7 text', () => {
  it('escapes and unescapes delimiters', () => {
    const s = 'a|b^c~d\\e&f\rg';
    assert.equal(hl7Escape(s), 'a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\g');
    assert.equal(hl7Unescape(hl7Escape(s)), s);
  });
});

describe('orders', () => {
  it('ORM^O01 with ZDS study and prior', () => {
    const order = orderFromMessage(parseHl7(ORM()), { assigningAuthorities: { HOSP: 'urn:oid:1.2.3.4.5' } });
    assert.deepEqual(order, {
      studyInstanceUid: STUDY,
      patientId: 'MRN0026',
      patientIdSystem: 'urn:oid:1.2.3.4.5',
      priorStudyInstanceUid: '1.2.826.0.1.3680043.8.498.10025',
      placerOrderNumber: 'PLC-77',
      source: 'hl7v2',
      options: {},
      orderReference: 'hl7v2:CTRL-1',
    });
  });

  it('OMI^O23 with IPC-3 and an ISO assigning authority', () => {
    const order = orderFromMessage(parseHl7(OMI()));
    assert.equal(order.studyInstanceUid, STUDY);
    assert.equal(order.patientId, 'MRN0026');
    assert.equal(order.patientIdSystem, 'urn:oid:2.16.840.1.113883.3.1');
    assert.equal(order.placerOrderNumber, 'PLC-88');
    assert.equal(order.priorStudyInstanceUid, undefined);
  });
});

function listenerOptions(handler: MllpListenerOptions['handler']): MllpListenerOptions {
  return { port: 0, handler, logger: SILENT_LOGGER, now: () => new Date('2026-03-02T10:00:00Z') };
}

async function ackOf(text: string, handler: MllpListenerOptions['handler']): Promise<Hl7Message> {
  const out = await handleInbound(text, listenerOptions(handler));
  return Hl7Message.parse(out.ack);
}

function msa(ack: Hl7Message): [string, string] {
  const s = ack.getSegment('MSA')!;
  return [s.getField(1).toString(), s.getField(2).toString()];
}

function errCode(ack: Hl7Message): string {
  return ack.getSegment('ERR')?.getField(5).getComponent(1) ?? '';
}

describe('inbound handling against the real submitOrder (SQLite store, in-process queue)', () => {
  it('accepts an order once (AA), a repeat is AA without a second analysis, bad content is AE/AR', async () => {
    const store = new SqliteAnalysisStore({ path: ':memory:' });
    const queue = new InProcessJobQueue();
    const handler: MllpListenerOptions['handler'] = (o) =>
      submitOrder({ store, queue, clock: systemClock, logger: SILENT_LOGGER }, o);
    try {
      const first = await handleInbound(ORM(), listenerOptions(handler));
      assert.equal(first.code, 'AA');
      assert.equal(first.created, true);
      const ack = Hl7Message.parse(first.ack);
      assert.deepEqual(msa(ack), ['AA', 'CTRL-1']);
      assert.equal(ack.getSegment('MSH')?.getField(9).toString(), 'ACK^O01^ACK');
      const repeat = await handleInbound(ORM({ control: 'CTRL-2' }), listenerOptions(handler));
      assert.equal(repeat.code, 'AA');
      assert.equal(repeat.created, false);
      assert.equal(repeat.analysisId, first.analysisId);
      assert.equal((await store.list({ limit: 10, offset: 0 })).total, 1);

      // Same placer number for another study: ORDER.CONFLICT → AE with ERR.
      const conflict = await ackOf(ORM({ control: 'C3', study: '1.2.3.4' }), handler);
      assert.deepEqual(msa(conflict), ['AE', 'C3']);
      assert.equal(errCode(conflict), 'ORDER.CONFLICT');

      const cases: [string, string, string][] = [
        [ORM({ control: 'C4', pid3: '' }), 'AE', 'HL7.MISSING_PATIENT_ID'],
        [ORM({ control: 'C5', withoutPid: true }), 'AE', 'HL7.MISSING_SEGMENT'],
        [ORM({ control: 'C6', study: '1.02.x' }), 'AE', 'HL7.INVALID_STUDY_UID'],
        [ORM({ control: 'C7', withoutZds: true }), 'AE', 'HL7.MISSING_STUDY_UID'],
        [ORM({ control: 'C8', orderControl: 'CA' }), 'AE', 'HL7.UNSUPPORTED_ORDER_CONTROL'],
        [ORM({ control: 'C9', extraSegment: 'pid|lower' }), 'AE', 'HL7.BAD_SEGMENT'],
        [ORM({ control: 'C10', type: 'ADT^A01' }), 'AR', 'HL7.UNSUPPORTED_MESSAGE_TYPE'],
        [ORM({ control: 'C11', type: 'ORM^O02' }), 'AR', 'HL7.UNSUPPORTED_EVENT'],
        [ORM({ control: 'C12', version: '3.0' }), 'AR', 'HL7.UNSUPPORTED_VERSION'],
        [ORM({ control: 'C13', placer: '' }), 'AE', 'HL7.MISSING_PLACER_ORDER_NUMBER'],
        [ORM({ control: 'C14', patientId: 'x'.repeat(80) }), 'AE', 'ORDER.INVALID_PATIENT_ID'],
      ];
      for (const [text, code, err] of cases) {
        const a = await ackOf(text, handler);
        assert.equal(msa(a)[0], code, err);
        assert.equal(errCode(a), err);
        assert.ok(a.getSegment('ERR')!.getField(3).toString().endsWith('HL70357'));
      }
      assert.equal((await store.list({ limit: 10, offset: 0 })).total, 1, 'nothing else was created');
    } finally {
      await queue.close();
      await store.close();
    }
  });

  it('unreadable messages get an AR with our own header', async () => {
    const never: MllpListenerOptions['handler'] = () => Promise.reject(new Error('must not be called'));
    for (const [text, err] of [
      ['garbage', 'HL7.NOT_A_MESSAGE'],
      ['MSH|^~\\', 'HL7.BAD_ENCODING_CHARACTERS'],
      ['MSH|^^\\&|A|B', 'HL7.BAD_ENCODING_CHARACTERS'],
      ['MSHA^~\\&A', 'HL7.BAD_ENCODING_CHARACTERS'],
      ['', 'HL7.NOT_A_MESSAGE'],
    ] as const) {
      const a = await ackOf(text, never);
      assert.deepEqual(msa(a), ['AR', ''], text);
      assert.equal(errCode(a), err);
    }
    const noCtrl = await ackOf(ORM({ control: '' }), never);
    assert.equal(errCode(noCtrl), 'HL7.MISSING_CONTROL_ID');
  });

  it('a handler crash becomes AR (retry later), never an exception', async () => {
    const a = await ackOf(ORM(), () => Promise.reject(new Error('database is locked')));
    assert.deepEqual(msa(a), ['AR', 'CTRL-1']);
    assert.equal(errCode(a), 'INTERNAL.ERROR');
  });

  it('the oversized NAK names the message when its MSH is readable', () => {
    const opts = listenerOptions(() => Promise.reject(new Error('x')));
    const named = Hl7Message.parse(oversizedAck(Buffer.from(ORM().slice(0, 300)), 5_000_000, opts));
    assert.deepEqual(msa(named), ['AR', 'CTRL-1']);
    assert.equal(errCode(named), 'HL7.MESSAGE_TOO_LARGE');
    const anon = Hl7Message.parse(oversizedAck(Buffer.from('xxxx'), 5_000_000, opts));
    assert.deepEqual(msa(anon), ['AR', '']);
  });
});

describe('study check and audit', () => {
  it('an order for a study the PACS does not hold is AE STUDY.NOT_FOUND; every order is audited', async () => {
    const pacs = new FolderImageSource(dicomSeriesDir('ge_fse_pd_axial'));
    const audit = new SqliteAuditLog({ path: ':memory:' });
    const store = new SqliteAnalysisStore({ path: ':memory:' });
    const queue = new InProcessJobQueue();
    const options: MllpListenerOptions = {
      ...listenerOptions((o) => submitOrder({ store, queue, clock: systemClock, logger: SILENT_LOGGER }, o)),
      checkStudy: async (uid) => {
        await pacs.findStudy(uid);
      },
      audit,
    };
    try {
      const missing = Hl7Message.parse(
        (await handleInbound(ORM({ control: 'S1', prior: null }), options)).ack,
      );
      assert.deepEqual(msa(missing), ['AE', 'S1']);
      assert.equal(errCode(missing), 'STUDY.NOT_FOUND');
      assert.equal(missing.getSegment('ERR')?.getField(3).getComponent(1), '204');
      const ok = await handleInbound(
        ORM({ control: 'S2', prior: null, study: '0.0.0.0.2.8811.20010413115754.12432' }),
        options,
      );
      assert.equal(ok.code, 'AA');
      const records = await audit.list({ limit: 10 });
      assert.deepEqual(
        records.map((r) => [r.source, r.outcome, r.outcomeDescription ?? '', r.agent.who, r.patient?.id]),
        [
          ['hl7v2', '0', '', 'RIS^HOSP', 'MRN0026'],
          ['hl7v2', '4', 'STUDY.NOT_FOUND', 'RIS^HOSP', 'MRN0026'],
        ],
      );
    } finally {
      await queue.close();
      await store.close();
      await audit.close();
    }
  });
});

describe('ORU^R01', () => {
  it('has OBR for the order, one OBX per metric with UCUM units, NTE with the conclusion; deterministic', () => {
    const analysis = sampleAnalysis({ order: { source: 'hl7v2', placerOrderNumber: 'PLC-77' } });
    const text = buildOru(analysis, sampleStudy(), {
      receivingApplication: 'EHR',
      receivingFacility: 'HOSP',
    });
    assert.equal(
      text,
      buildOru(analysis, sampleStudy(), { receivingApplication: 'EHR', receivingFacility: 'HOSP' }),
    );
    const m = Hl7Message.parse(text);
    const msh = m.getSegment('MSH')!;
    assert.equal(msh.getField(9).toString(), 'ORU^R01^ORU_R01');
    assert.equal(msh.getField(10).toString(), oruControlId(analysis.id));
    assert.ok(oruControlId(analysis.id).length <= 20);
    assert.equal(msh.getField(7).toString(), '20260302090410+0000');
    assert.equal(m.getSegment('PID')?.getField(3).toString(), 'MRN-0026^^^&1.2.3.4.5.6.7&ISO^MR');
    const obr = m.getSegment('OBR')!;
    assert.equal(obr.getField(2).toString(), 'PLC-77');
    assert.equal(obr.getField(3).toString(), `${analysis.id}^MSLESION`);
    assert.equal(obr.getField(4).toString(), '24590-2^MR Brain^LN');
    assert.equal(obr.getField(7).toString(), '20260301');
    assert.equal(obr.getField(25).toString(), 'F');
    const obx = m.getAllSegments('OBX');
    // total volume, count, 4 × (volume, count), new, enlarging, disappeared, Δ mL, Δ %.
    assert.equal(obx.length, 2 + 8 + 5);
    obx.forEach((o, i) => {
      assert.equal(o.getField(1).toString(), String(i + 1));
      assert.equal(o.getField(2).toString(), 'NM');
      assert.equal(o.getField(11).toString(), 'F');
      assert.match(o.getField(6).toString(), /\^UCUM$/);
      assert.ok(Number.isFinite(Number(o.getField(5).toString())));
    });
    assert.equal(
      obx[0].getField(3).toString(),
      'total-t2-lesion-volume^Total T2/FLAIR lesion volume^99MSL^118565006^Volume^SCT',
    );
    assert.equal(obx[0].getField(6).toString(), 'mL^milliliter^UCUM');
    assert.equal(obx[1].getField(5).toString(), '19');
    assert.equal(obx[1].getField(6).toString(), '{lesions}^lesions^UCUM');
    assert.equal(obx[2].getField(4).toString(), 'periventricular');
    assert.equal(obx[14].getField(6).toString(), '%^percent^UCUM');
    const nte = m.getSegment('NTE')!;
    assert.match(nte.getField(3).toString(), /^19 T2\/FLAIR lesions, total volume 8\.20 mL/);
  });

  it('refuses an unfinished analysis', () => {
    assert.throws(
      () => buildOru({ ...sampleAnalysis(), status: 'failed' }, sampleStudy()),
      /HL7.NO_RESULT|succeeded/,
    );
  });
});
