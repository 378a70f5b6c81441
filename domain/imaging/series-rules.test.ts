import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../errors.ts';
import type { SeriesAttributes, SeriesDescriptor } from '../ports/image-source.port.ts';
import { classifySeries, parseSeriesRules } from './series-rules.ts';
import { classifyStudy, candidates } from './select-series.ts';

function series(
  uid: string,
  attributes: Partial<SeriesAttributes>,
  extra: Partial<SeriesDescriptor> = {},
): SeriesDescriptor {
  return {
    studyInstanceUid: '1.2',
    seriesInstanceUid: uid,
    modality: 'MR',
    numberOfInstances: 100,
    attributes: { scanningSequence: [], sequenceVariant: [], scanOptions: [], imageType: [], ...attributes },
    ...extra,
  };
}

const RULES = {
  version: 1,
  roles: [
    { id: 'not-mr', role: 'OTHER', when: { not: { attribute: 'modality', equals: 'MR' } } },
    { id: 'flair-name', role: 'FLAIR', when: { attribute: 'seriesDescription', matches: 'flair' } },
    {
      id: 'flair-params',
      role: 'FLAIR',
      when: {
        all: [
          { attribute: 'scanningSequence', includes: 'IR' },
          { attribute: 'inversionTime', gte: 1500 },
        ],
      },
    },
    { id: 't1c', role: 'T1C', when: { attribute: 'contrastBolusAgent', exists: true } },
    { id: 't1', role: 'T1', when: { attribute: 'seriesDescription', matches: 't1' } },
  ],
  acquisition: [
    { id: 'acq3d', acquisition: '3D', when: { attribute: 'mrAcquisitionType', equals: '3D' } },
    { id: 'acq2d', acquisition: '2D', when: { attribute: 'mrAcquisitionType', in: ['2D'] } },
  ],
};

test('first matching rule decides; the reason names the rule and the matched values', () => {
  const rules = parseSeriesRules(RULES);
  const c = classifySeries(series('1', { seriesDescription: 'AX FLAIR', mrAcquisitionType: '2D' }), rules);
  assert.equal(c.role, 'FLAIR');
  assert.equal(c.ruleId, 'flair-name');
  assert.equal(c.acquisition, '2D');
  assert.match(c.reason, /flair-name.*seriesDescription "AX FLAIR" matches \/flair\//);
  assert.match(c.reason, /2D by rule acq2d/);

  const p = classifySeries(
    series('2', { scanningSequence: ['SE', 'IR'], inversionTime: 2500, mrAcquisitionType: '3D' }),
    rules,
  );
  assert.equal(p.ruleId, 'flair-params');
  assert.deepEqual(p.matched, ['scanningSequence SE\\IR includes IR', 'inversionTime 2500 ≥ 1500']);
  assert.equal(p.acquisition, '3D');

  const none = classifySeries(series('3', { seriesDescription: 'DWI' }), rules);
  assert.equal(none.role, 'OTHER');
  assert.equal(none.ruleId, 'none');
  assert.equal(none.acquisition, 'unknown');

  const ct = classifySeries(series('4', { seriesDescription: 'FLAIR' }, { modality: 'CT' }), rules);
  assert.equal(ct.ruleId, 'not-mr');
  assert.equal(classifySeries(series('5', { contrastBolusAgent: 'Gadovist' }), rules).role, 'T1C');
});

test('a site file that extends the defaults runs first; ids must stay unique', () => {
  const base = parseSeriesRules(RULES);
  const site = parseSeriesRules(
    {
      version: 1,
      extends: 'default',
      roles: [{ id: 'site-t2-dark', role: 'T2', when: { attribute: 'protocolName', matches: '^site_t2' } }],
    },
    base,
  );
  assert.equal(site.roles[0].id, 'site-t2-dark');
  assert.equal(site.roles.length, base.roles.length + 1);
  assert.equal(classifySeries(series('1', { protocolName: 'SITE_T2 flair-ish' }), site).role, 'T2');
  assert.equal(classifySeries(series('1', { seriesDescription: 'flair' }), site).role, 'FLAIR');
  assert.throws(
    () => parseSeriesRules({ version: 1, extends: 'default', roles: [RULES.roles[1]] }, base),
    (e: unknown) =>
      e instanceof DomainError && e.code === 'CONFIG.SERIES_RULES_INVALID' && /already used/.test(e.message),
  );
});

test('invalid rule documents are refused with the path of the problem', () => {
  const bad = (doc: unknown, re: RegExp): void => {
    assert.throws(
      () => parseSeriesRules(doc),
      (e: unknown) =>
        e instanceof DomainError && e.code === 'CONFIG.SERIES_RULES_INVALID' && re.test(e.message),
    );
  };
  bad(null, /must be an object/);
  bad({ version: 2, roles: [] }, /version/);
  bad({ version: 1, roles: [] }, /at least one role rule/);
  bad({ version: 1, roles: [{ id: 'x', role: 'T3', when: { attribute: 'echoTime', gt: 1 } }] }, /role/);
  bad(
    { version: 1, roles: [{ id: 'x', role: 'T1', when: { attribute: 'colour', equals: 'red' } }] },
    /unknown attribute/,
  );
  bad(
    { version: 1, roles: [{ id: 'x', role: 'T1', when: { attribute: 'seriesDescription', matches: '(' } }] },
    /regular expression/,
  );
  bad(
    { version: 1, roles: [{ id: 'x', role: 'T1', when: { attribute: 'echoTime', gt: '5' } }] },
    /roles\[0\]\.when.*needs a number/,
  );
  bad({ version: 1, roles: [{ id: 'x', role: 'T1', when: { all: [] } }] }, /non-empty/);
  bad(
    {
      version: 1,
      roles: [
        { id: 'x', role: 'T1', when: { attribute: 'echoTime', gt: 1 } },
        { id: 'x', role: 'T2', when: { attribute: 'echoTime', gt: 1 } },
      ],
    },
    /duplicate rule id/,
  );
  bad(
    { version: 1, roles: [{ id: 'x', role: 'T1', when: { attribute: 'echoTime', gt: 1, lt: 5 } }] },
    /exactly one/,
  );
  bad({ version: 1, extends: 'default', roles: [] }, /no default rules/);
  bad({ version: 1, rules: [] }, /unknown key/);
});

test('ranking: 3D first, then thinner slices, then the most recent series number', () => {
  const rules = parseSeriesRules(RULES);
  const study = {
    studyInstanceUid: '1.2',
    series: [
      series(
        'a',
        { seriesDescription: 'flair 2d', mrAcquisitionType: '2D', sliceThickness: 1 },
        { seriesNumber: 9 },
      ),
      series(
        'b',
        { seriesDescription: 'flair 3d', mrAcquisitionType: '3D', sliceThickness: 1.2 },
        { seriesNumber: 3 },
      ),
      series(
        'c',
        { seriesDescription: 'flair 3d', mrAcquisitionType: '3D', sliceThickness: 1 },
        { seriesNumber: 2 },
      ),
      series(
        'd',
        { seriesDescription: 'flair 3d', mrAcquisitionType: '3D', sliceThickness: 1 },
        { seriesNumber: 7 },
      ),
      series('e', { seriesDescription: 'flair ?', sliceThickness: 0.5 }, { seriesNumber: 8 }),
      series('f', { seriesDescription: 't1' }),
    ],
  };
  const classified = classifyStudy(study, rules);
  assert.deepEqual(
    candidates(classified, 'FLAIR').map((c) => c.series.seriesInstanceUid),
    ['d', 'c', 'b', 'a', 'e'],
  );
  assert.equal(classified.find((c) => c.series.seriesInstanceUid === 'd')?.rank, 1);
  assert.equal(classified.find((c) => c.series.seriesInstanceUid === 'f')?.rank, 1);
});
