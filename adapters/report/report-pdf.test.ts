/**
 * The clinical PDF report, rendered from a real case (open_ms patient26) and checked the way a reader sees it:
 * pdftotext must contain the numbers, and the page images (pdftoppm) must show the coloured lesion outlines
 * inside the delineation examples — and none in the plain FLAIR row above them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { LESION_LOCATIONS } from '../../domain/model/analysis.ts';
import { decodePng, type RgbImage } from './overlay.ts';
import { ACCENT_RGB, CHANGE_RGB, LESION_RGB, type Rgb } from './palette.ts';
import { PdfReportRenderer, renderReportPdf, type Box, type RenderedReport } from './report-pdf.ts';
import { loadSampleCase, type SampleCase } from './testing/sample-case.ts';

const run = promisify(execFile);
const DPI = 110;
const skip =
  existsSync('/usr/bin/pdftoppm') && existsSync('/usr/bin/pdftotext') ? false : 'poppler-utils not installed';

function near(img: RgbImage, o: number, rgb: Rgb, tol = 45): boolean {
  return (
    Math.abs(img.data[o] - rgb[0]) <= tol &&
    Math.abs(img.data[o + 1] - rgb[1]) <= tol &&
    Math.abs(img.data[o + 2] - rgb[2]) <= tol
  );
}

/** Pixels of a colour inside a box given in PDF points. */
function countIn(img: RgbImage, box: Pick<Box, 'x' | 'y' | 'width' | 'height'>, rgb: Rgb): number {
  const s = DPI / 72;
  let n = 0;
  for (let y = Math.ceil(box.y * s); y < Math.floor((box.y + box.height) * s); y++)
    for (let x = Math.ceil(box.x * s); x < Math.floor((box.x + box.width) * s); x++)
      if (near(img, 3 * (y * img.width + x), rgb)) n++;
  return n;
}

describe('clinical PDF report', { skip }, () => {
  let dir: string;
  let c: SampleCase;
  let report: RenderedReport;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'report-'));
    c = await loadSampleCase({ withPrior: true });
    report = await renderReportPdf({
      analysisId: c.context.analysisId,
      study: c.study,
      result: c.result,
      flair: c.flair,
      mask: c.mask,
      labels: c.labels,
      changeMask: c.changeMask!,
      createdAt: c.context.createdAt,
      history: [
        { date: '2024-02-15', totalVolumeMl: 6.9, count: 14 },
        { date: '2025-03-01', totalVolumeMl: c.result.change!.priorTotalVolumeMl },
      ],
    });
    await writeFile(join(dir, 'report.pdf'), report.pdf);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('two pages whose text holds the figures, the model and the intended use', async () => {
    assert.equal(report.layout.pages, 2);
    const { stdout } = await run('pdftotext', ['-layout', join(dir, 'report.pdf'), '-']);
    const text = stdout.replace(/\s+/g, ' ');
    const { lesions, change, model } = c.result;
    assert.equal((stdout.match(/\f/g) ?? []).length, 2);
    const vol = lesions.totalVolumeMl.toFixed(2);
    const delta = change!.totalVolumeChangeMl;
    // the key-figure row: labels, then values in the same order
    assert.ok(
      text.includes(
        `Disappeared ${vol} mL ${lesions.count} ${delta >= 0 ? '+' : '-'}${Math.abs(delta).toFixed(2)} mL ` +
          `${change!.newCount}/${change!.enlargedCount} ${change!.disappearedCount}`,
      ),
      text.slice(0, 1200),
    );
    for (const loc of LESION_LOCATIONS)
      assert.ok(text.includes(c.result.lesions.volumeByLocationMl[loc].toFixed(2)), loc);
    assert.ok(text.includes(`All locations ${lesions.count} ${vol}`), 'table total row');
    assert.ok(text.includes(`New lesions ${change!.newCount}`));
    assert.ok(text.includes(`Disappeared lesions ${change!.disappearedCount}`));
    assert.ok(text.includes(`${change!.priorTotalVolumeMl.toFixed(2)} mL`), 'prior volume');
    assert.ok(text.includes(model.name) && text.includes(model.version) && text.includes(model.variant));
    assert.ok(text.includes(c.study.patientId!));
    assert.match(text, /not for diagnosis/i);
    assert.match(text, /Intended use/);
    assert.ok(text.includes('2024-02-15') && text.includes('2026-03-01'), 'trend plot dates');
  });

  test('page 1 shows the lesion outlines inside the examples and none on the plain FLAIR row', async () => {
    await run('pdftoppm', [
      '-r',
      String(DPI),
      '-f',
      '1',
      '-l',
      '1',
      '-png',
      join(dir, 'report.pdf'),
      join(dir, 'p'),
    ]);
    const img = decodePng(await readFile(join(dir, 'p-1.png')));
    assert.ok(report.layout.examples.length >= 3);
    let changed = 0;
    for (const e of report.layout.examples) {
      const red = countIn(img, e, LESION_RGB);
      const plainRed = countIn(img, { ...e, y: e.plainY }, LESION_RGB);
      if (e.lesionOutlinePixels > 50) assert.ok(red > 10, `slice ${e.k}: ${red} outline pixels`);
      assert.ok(plainRed <= 2, `slice ${e.k}: ${plainRed} outline-coloured pixels on the plain FLAIR`);
      if (e.changeOutlinePixels > 0) {
        changed++;
        assert.ok(countIn(img, e, CHANGE_RGB) > 0, `slice ${e.k}: no change outline`);
      }
    }
    assert.ok(changed >= 1, 'an example shows new/enlarging lesions');
    // nothing outline-coloured in the header and key-figure area
    assert.equal(countIn(img, { x: 0, y: 0, width: report.layout.pageWidth, height: 300 }, LESION_RGB), 0);
  });

  test('page 2 holds the trend plot', async () => {
    await run('pdftoppm', [
      '-r',
      String(DPI),
      '-f',
      '2',
      '-l',
      '2',
      '-png',
      join(dir, 'report.pdf'),
      join(dir, 'q'),
    ]);
    const img = decodePng(await readFile(join(dir, 'q-2.png')));
    const box = report.layout.trendPlot!;
    assert.ok(countIn(img, box, ACCENT_RGB) > 100, 'trend line and points');
  });

  test('without a prior: one page, no longitudinal section; rendering is deterministic', async () => {
    const { change: _c, ...noPrior } = c.result;
    const input = {
      analysisId: c.context.analysisId,
      study: c.study,
      result: noPrior,
      flair: c.flair,
      mask: c.mask,
      createdAt: c.context.createdAt,
    };
    const a = await renderReportPdf(input);
    const b = await renderReportPdf(input);
    assert.equal(a.layout.pages, 1);
    assert.deepEqual(a.pdf, b.pdf);
    assert.deepEqual(await new PdfReportRenderer().renderPdf(input), a.pdf);
    await writeFile(join(dir, 'single.pdf'), a.pdf);
    const { stdout } = await run('pdftotext', [join(dir, 'single.pdf'), '-']);
    assert.ok(!stdout.includes('Longitudinal'));
    assert.equal((stdout.match(/\f/g) ?? []).length, 1);
  });
});
