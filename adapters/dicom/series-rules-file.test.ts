import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { classifySeries } from '../../domain/imaging/series-rules.ts';
import type { SeriesAttributes, SeriesDescriptor } from '../../domain/ports/image-source.port.ts';
import { DICOM_FIXTURES, dicomSeriesDir } from '../../test/helpers/fixtures.ts';
import { identityOf, seriesAttributesOf } from './image.ts';
import { parsePart10 } from './part10.ts';
import { defaultSeriesRules, loadSeriesRules } from './series-rules-file.ts';

function mr(attributes: Partial<SeriesAttributes>, modality = 'MR'): SeriesDescriptor {
  return {
    studyInstanceUid: '1.2',
    seriesInstanceUid: '1.2.3',
    modality,
    numberOfInstances: 40,
    attributes: { scanningSequence: [], sequenceVariant: [], scanOptions: [], imageType: [], ...attributes },
  };
}

test('default rules on the real fixture series (attributes read from their DICOM headers)', async () => {
  const rules = defaultSeriesRules();
  const expected: Record<string, [string, string, string]> = {
    philips_ingenia_t1_mprage: ['T1', '3D', 't1-by-name'],
    // post-contrast in fact, but nothing in the header says so: no agent, no "post" in the description
    siemens_avanto_t1_mprage: ['T1', '3D', 't1-by-name'],
    ge_fse_pd_axial: ['OTHER', '2D', 'pd-by-name'],
  };
  for (const name of DICOM_FIXTURES) {
    const dir = dicomSeriesDir(name);
    const file = (await readdir(dir)).sort()[0];
    const p = parsePart10(await readFile(join(dir, file)), { headerOnly: true });
    const id = identityOf(p);
    const c = classifySeries(
      { ...mr(seriesAttributesOf(p.dataset), id.modality), sopClassUid: id.sopClassUid },
      rules,
    );
    assert.deepEqual([c.role, c.acquisition, c.ruleId], expected[name], `${name}: ${c.reason}`);
  }
});

test('default rules on vendor-style descriptions and on acquisition parameters alone', () => {
  const rules = defaultSeriesRules();
  const cases: [Partial<SeriesAttributes>, string, string?][] = [
    [{ seriesDescription: 't2_tse_dark-fluid_tra' }, 'FLAIR'],
    [{ seriesDescription: 't2_spc_da-fl_sag_p2_iso', mrAcquisitionType: '3D' }, 'FLAIR', '3D'],
    [{ seriesDescription: 'Sag CUBE FLAIR' }, 'FLAIR', '3D'],
    [{ seriesDescription: '3D_Brain_VIEW_FLAIR_SENSE' }, 'FLAIR', '3D'],
    [{ seriesDescription: 'AX FLAIR', mrAcquisitionType: '2D' }, 'FLAIR', '2D'],
    [{ seriesDescription: 'Ax T1 FLAIR' }, 'T1'],
    [{ seriesDescription: 't2_tse_tra' }, 'T2', '2D'],
    [{ seriesDescription: 'Ax T2 FRFSE' }, 'T2'],
    [{ seriesDescription: 'T2W_TSE' }, 'T2'],
    [{ seriesDescription: 'AX T2*' }, 'OTHER'],
    [{ seriesDescription: 't2_swi_tra_p2' }, 'OTHER'],
    [{ seriesDescription: 't1_mprage_sag_p2_iso' }, 'T1', '3D'],
    [{ seriesDescription: 'Sag 3D BRAVO' }, 'T1', '3D'],
    [{ seriesDescription: 'T1W_3D_TFE' }, 'T1', '3D'],
    [{ seriesDescription: 'T1W_3D_TFE +C' }, 'T1C'],
    [{ seriesDescription: 'Ax T1 post gad' }, 'T1C'],
    [{ seriesDescription: 't1_mprage_sag', contrastBolusAgent: 'Gadovist 1 mmol/ml' }, 'T1C'],
    [{ seriesDescription: 't1_mprage_sag', contrastBolusAgent: 'NONE' }, 'T1'],
    [{ seriesDescription: 'ep2d_diff_3scan_trace' }, 'OTHER'],
    [{ seriesDescription: 'localizer' }, 'OTHER'],
    [{ seriesDescription: 'FLAIR', imageType: ['DERIVED', 'PRIMARY', 'ADC'] }, 'OTHER'],
    [
      { seriesDescription: 'series 5', scanningSequence: ['SE', 'IR'], inversionTime: 2500, echoTime: 120 },
      'FLAIR',
    ],
    [{ seriesDescription: 'series 6', scanningSequence: ['SE'], repetitionTime: 4000, echoTime: 100 }, 'T2'],
    [{ seriesDescription: 'series 7', scanningSequence: ['GR'], repetitionTime: 8, echoTime: 3 }, 'T1'],
    [{ scanningSequence: ['GR', 'IR'], sequenceVariant: ['MP'], inversionTime: 900, echoTime: 3 }, 'T1'],
    [{ scanningSequence: ['SE'], repetitionTime: 500, echoTime: 12 }, 'T1'],
    [{ scanningSequence: ['SE'], repetitionTime: 2300, echoTime: 22 }, 'OTHER'],
  ];
  for (const [attrs, role, acq] of cases) {
    const c = classifySeries(mr(attrs), rules);
    assert.equal(c.role, role, `${JSON.stringify(attrs)} → ${c.reason}`);
    if (acq !== undefined) assert.equal(c.acquisition, acq, `${JSON.stringify(attrs)} → ${c.reason}`);
  }
  assert.equal(classifySeries(mr({ seriesDescription: 'FLAIR' }, 'CT'), rules).ruleId, 'not-mr');
  assert.equal(
    classifySeries({ ...mr({ seriesDescription: 'FLAIR' }), numberOfInstances: 1 }, rules).ruleId,
    'too-few-planes',
  );
});

test('a site file extends the defaults; unreadable or invalid files get coded errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rules-'));
  try {
    const site = join(dir, 'site.json');
    await writeFile(
      site,
      JSON.stringify({
        version: 1,
        extends: 'default',
        roles: [
          {
            id: 'site-flair',
            role: 'FLAIR',
            when: { attribute: 'seriesDescription', matches: '^wm_lesion_protocol' },
          },
        ],
      }),
    );
    const rules = await loadSeriesRules(site);
    const c = classifySeries(mr({ seriesDescription: 'WM_LESION_PROTOCOL 3' }), rules);
    assert.equal(c.ruleId, 'site-flair');
    assert.equal(classifySeries(mr({ seriesDescription: 't2_tse_tra' }), rules).role, 'T2');

    await writeFile(site, '{ not json');
    await assert.rejects(
      loadSeriesRules(site),
      (e: unknown) => e instanceof DomainError && e.code === 'CONFIG.SERIES_RULES_INVALID',
    );
    await assert.rejects(
      loadSeriesRules(join(dir, 'absent.json')),
      (e: unknown) => e instanceof DomainError && e.code === 'CONFIG.SERIES_RULES_UNREADABLE',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
