/**
 * The clinical PDF report of an analysis (pdfkit, A4, one page — two with a prior exam):
 * page 1 — header with the intended-use statement, patient/study block, model (name, version, variant,
 * channels), key figures (total lesion volume and count; with a prior: volume change, new, enlarged,
 * disappeared), the per-location table, and the delineation examples (the most informative FLAIR slices,
 * domain/reporting/slices.ts, with the lesions outlined; adapters/report/overlay.ts);
 * page 2 (with a prior) — the longitudinal comparison (change table, volume change, registration quality),
 * a trend plot of lesion load over the patient's exams, and the largest lesions.
 * Every page carries the intended-use footer. Deterministic: the same input gives the same bytes (the PDF
 * dates come from `createdAt`).
 *
 * Fonts are the PDF standard Helvetica family (WinAnsi): characters outside Latin-1 in patient names are
 * replaced by "?".
 */
import PDFDocument from 'pdfkit';
import type { LesionLocation } from '../../domain/model/analysis.ts';
import { LESION_LOCATIONS } from '../../domain/model/analysis.ts';
import { applyAffine } from '../../domain/model/geometry.ts';
import type { ExamLoad, ReportRenderer, ReportRequest } from '../../domain/ports/report-renderer.port.ts';
import { autoWindow, inPlaneBounds, selectDelineationSlices } from '../../domain/reporting/slices.ts';
import { encodePng, renderOverlaySlice } from './overlay.ts';
import { ACCENT_RGB, CHANGE_RGB, hex, LESION_RGB, type Rgb } from './palette.ts';

export type { ExamLoad } from '../../domain/ports/report-renderer.port.ts';

export interface ReportInput extends ReportRequest {
  /** Number of delineation examples (default 4). */
  readonly examples?: number;
  /** Source/licence line printed under the examples (e.g. for sample images from a public data set). */
  readonly imageCredit?: string;
}

export interface Box {
  readonly page: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface ReportLayout {
  readonly pages: number;
  /** Page size in points. */
  readonly pageWidth: number;
  readonly pageHeight: number;
  /**
   * Where each delineation example was placed (points, top-left origin): the outlined image (x, y, width,
   * height), the plain FLAIR above it at `plainY`, and the slice shown.
   */
  readonly examples: readonly (Box & {
    readonly plainY: number;
    readonly k: number;
    readonly lesionOutlinePixels: number;
    readonly changeOutlinePixels: number;
  })[];
  readonly trendPlot?: Box;
}

export interface RenderedReport {
  readonly pdf: Uint8Array;
  readonly layout: ReportLayout;
}

export const INTENDED_USE =
  'Intended use: research and quality-assurance tool that segments and measures T2/FLAIR hyperintense ' +
  'white-matter lesions on brain MRI of patients with known or suspected multiple sclerosis. The results are ' +
  'AI-generated, not for diagnosis, and must be reviewed by a qualified radiologist against the images.';

const LOCATION_LABEL: Readonly<Record<LesionLocation, string>> = {
  periventricular: 'Periventricular',
  juxtacortical: 'Juxtacortical / cortical',
  infratentorial: 'Infratentorial',
  subcortical: 'Subcortical / deep white matter',
};

const A4 = { width: 595.28, height: 841.89 };
const MARGIN = 40;
const INK = '#1d232b';
const MUTED = '#5b6573';
const RULE = '#c9d1db';
const PANEL = '#f2f5f8';

function latin1(s: string): string {
  return s.replace(/[^\x20-\x7e\xa0-\xff\u2013\u2014\u2019\u00b7]/g, '?');
}

function fmt(x: number, digits = 2): string {
  return x.toFixed(digits);
}

function signed(x: number, digits = 2): string {
  return (x > 0 ? '+' : x < 0 ? '-' : '') + Math.abs(x).toFixed(digits);
}

function isoDate(v: string | undefined): string {
  if (v === undefined || v === '') return '-';
  const m = /^(\d{4})-?(\d{2})-?(\d{2})/.exec(v);
  return m === null ? v : `${m[1]}-${m[2]}-${m[3]}`;
}

function personName(pn: string | undefined): string {
  if (pn === undefined || pn.trim() === '') return '-';
  const [family = '', given = '', middle = ''] = pn.split('^');
  const rest = [given, middle].filter((x) => x !== '').join(' ');
  return rest === '' ? family : `${family}, ${rest}`;
}

function when(d: string | Date): Date {
  const x = typeof d === 'string' ? new Date(d) : d;
  return Number.isNaN(x.getTime()) ? new Date(0) : x;
}

function rgbHex(rgb: Rgb): string {
  return hex(rgb);
}

type Doc = PDFKit.PDFDocument;

function footer(doc: Doc, page: number, pages: number, input: ReportInput): void {
  const y = A4.height - MARGIN - 30;
  doc.save();
  doc
    .moveTo(MARGIN, y - 6)
    .lineTo(A4.width - MARGIN, y - 6)
    .lineWidth(0.5)
    .strokeColor(RULE)
    .stroke();
  doc
    .font('Helvetica')
    .fontSize(7)
    .fillColor(MUTED)
    .text(latin1(INTENDED_USE), MARGIN, y, { width: A4.width - 2 * MARGIN - 60, lineGap: 1 });
  doc
    .fontSize(7)
    .fillColor(MUTED)
    .text(`Page ${page} of ${pages}`, A4.width - MARGIN - 60, y, { width: 60, align: 'right' });
  doc
    .fontSize(6.5)
    .text(`Analysis ${input.analysisId}`, A4.width - MARGIN - 160, y + 18, { width: 160, align: 'right' });
  doc.restore();
}

function sampleMark(doc: Doc): void {
  doc.save();
  doc.rotate(-30, { origin: [A4.width / 2, A4.height / 2] });
  doc
    .font('Helvetica-Bold')
    .fontSize(96)
    .fillColor('#d9534f')
    .fillOpacity(0.08)
    .text('SAMPLE', 0, A4.height / 2 - 50, { width: A4.width, align: 'center' });
  doc.restore();
  doc.fillOpacity(1);
}

function header(doc: Doc, input: ReportInput, subtitle: string): number {
  doc.rect(0, 0, A4.width, 62).fill(rgbHex(ACCENT_RGB));
  doc
    .font('Helvetica-Bold')
    .fontSize(17)
    .fillColor('#ffffff')
    .text('MS Lesion Analysis', MARGIN, 16, { width: 360 });
  doc.font('Helvetica').fontSize(9).fillColor('#dbe6f2').text(subtitle, MARGIN, 38, { width: 360 });
  doc
    .font('Helvetica-Bold')
    .fontSize(8.5)
    .fillColor('#ffffff')
    .text('AI-GENERATED - RESEARCH USE ONLY', A4.width - MARGIN - 200, 18, { width: 200, align: 'right' })
    .font('Helvetica')
    .fontSize(8.5)
    .text('NOT FOR DIAGNOSIS', A4.width - MARGIN - 200, 31, { width: 200, align: 'right' });
  if (input.institutionName !== undefined)
    doc
      .fontSize(7.5)
      .fillColor('#dbe6f2')
      .text(latin1(input.institutionName), A4.width - MARGIN - 200, 44, { width: 200, align: 'right' });
  return 78;
}

function sectionTitle(doc: Doc, title: string, y: number): number {
  doc.font('Helvetica-Bold').fontSize(10.5).fillColor(rgbHex(ACCENT_RGB)).text(title, MARGIN, y);
  doc
    .moveTo(MARGIN, y + 14)
    .lineTo(A4.width - MARGIN, y + 14)
    .lineWidth(0.6)
    .strokeColor(RULE)
    .stroke();
  return y + 20;
}

/** Cuts `text` to fit `width` at the current font and size, ending with '...' when cut. */
function fitText(doc: Doc, text: string, width: number): string {
  if (doc.widthOfString(text) <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (doc.widthOfString(text.slice(0, mid).trimEnd() + '...') <= width) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo).trimEnd() + '...';
}

function fields(
  doc: Doc,
  x: number,
  y: number,
  width: number,
  rows: readonly (readonly [string, string])[],
): number {
  const labelW = 84;
  let yy = y;
  for (const [label, value] of rows) {
    doc.font('Helvetica').fontSize(8).fillColor(MUTED).text(label, x, yy, { width: labelW });
    doc.font('Helvetica').fontSize(8.5).fillColor(INK);
    // one line per field: long values (model names, study descriptions) are cut, never wrapped over the next row
    doc.text(fitText(doc, latin1(value), width - labelW - 4), x + labelW, yy - 0.5, {
      lineBreak: false,
    });
    yy += 13;
  }
  return yy;
}

function keyFigure(
  doc: Doc,
  x: number,
  y: number,
  w: number,
  label: string,
  value: string,
  unit: string,
): void {
  doc.roundedRect(x, y, w, 50, 4).fill(PANEL);
  doc
    .font('Helvetica')
    .fontSize(7.5)
    .fillColor(MUTED)
    .text(label, x + 8, y + 7, { width: w - 16 });
  doc
    .font('Helvetica-Bold')
    .fontSize(17)
    .fillColor(INK)
    .text(value, x + 8, y + 21, { width: w - 16, lineBreak: false });
  if (unit !== '') {
    const vw = doc.font('Helvetica-Bold').fontSize(17).widthOfString(value);
    doc
      .font('Helvetica')
      .fontSize(9)
      .fillColor(MUTED)
      .text(unit, x + 8 + vw + 3, y + 27.5, { lineBreak: false });
  }
}

function table(
  doc: Doc,
  y: number,
  columns: readonly { readonly title: string; readonly width: number; readonly align?: 'left' | 'right' }[],
  rows: readonly (readonly string[])[],
  boldLast = false,
): number {
  let x = MARGIN;
  doc.rect(MARGIN, y, A4.width - 2 * MARGIN, 15).fill(PANEL);
  for (const c of columns) {
    doc
      .font('Helvetica-Bold')
      .fontSize(8)
      .fillColor(INK)
      .text(c.title, x + 5, y + 4, { width: c.width - 10, align: c.align ?? 'left' });
    x += c.width;
  }
  let yy = y + 15;
  rows.forEach((r, n) => {
    x = MARGIN;
    const bold = boldLast && n === rows.length - 1;
    columns.forEach((c, i) => {
      doc
        .font(bold ? 'Helvetica-Bold' : 'Helvetica')
        .fontSize(8.5)
        .fillColor(INK)
        .text(latin1(r[i] ?? ''), x + 5, yy + 4, {
          width: c.width - 10,
          align: c.align ?? 'left',
          lineBreak: false,
        });
      x += c.width;
    });
    yy += 15;
    doc
      .moveTo(MARGIN, yy)
      .lineTo(A4.width - MARGIN, yy)
      .lineWidth(0.4)
      .strokeColor(RULE)
      .stroke();
  });
  return yy;
}

function legendSwatch(doc: Doc, x: number, y: number, rgb: Rgb, label: string): number {
  doc
    .rect(x, y + 1, 14, 7)
    .lineWidth(1.6)
    .strokeColor(rgbHex(rgb))
    .stroke();
  doc
    .font('Helvetica')
    .fontSize(7.5)
    .fillColor(MUTED)
    .text(label, x + 19, y, { lineBreak: false });
  return x + 19 + doc.widthOfString(label) + 14;
}

function historyOf(input: ReportInput): ExamLoad[] {
  const current: ExamLoad = {
    date: isoDate(input.study.studyDate),
    totalVolumeMl: input.result.lesions.totalVolumeMl,
    count: input.result.lesions.count,
  };
  const list: ExamLoad[] =
    input.history === undefined ? [] : input.history.map((h) => ({ ...h, date: isoDate(h.date) }));
  const change = input.result.change;
  if (input.history === undefined && change !== undefined)
    list.push({ date: isoDate(change.priorStudyDate), totalVolumeMl: change.priorTotalVolumeMl });
  if (!list.some((h) => h.date === current.date)) list.push(current);
  return list.filter((h) => /^\d{4}-\d{2}-\d{2}$/.test(h.date)).sort((a, b) => a.date.localeCompare(b.date));
}

/** Lesion-load trend: total volume (mL) per exam date, time-proportional x axis. */
function trendPlot(doc: Doc, x: number, y: number, w: number, h: number, exams: readonly ExamLoad[]): void {
  const left = x + 40;
  const bottom = y + h - 22;
  const top = y + 14;
  const right = x + w - 12;
  const inset = 36;
  doc.rect(x, y, w, h).fill(PANEL);
  const times = exams.map((e) => Date.parse(`${e.date}T00:00:00Z`));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const vmax = Math.max(0.5, ...exams.map((e) => e.totalVolumeMl)) * 1.2;
  const step = niceStep(vmax / 4);
  const yMax = Math.ceil(vmax / step) * step;
  const px = (t: number): number =>
    t1 === t0 ? (left + right) / 2 : left + inset + ((t - t0) / (t1 - t0)) * (right - left - 2 * inset);
  const py = (v: number): number => bottom - (v / yMax) * (bottom - top);
  doc.lineWidth(0.4).strokeColor(RULE);
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    doc.moveTo(left, py(v)).lineTo(right, py(v)).stroke();
    doc
      .font('Helvetica')
      .fontSize(7)
      .fillColor(MUTED)
      .text(
        fmt(v, Number.isInteger(step) ? 0 : step * 10 === Math.round(step * 10) ? 1 : 2),
        x + 2,
        py(v) - 3.5,
        {
          width: left - x - 6,
          align: 'right',
        },
      );
  }
  doc
    .font('Helvetica')
    .fontSize(7)
    .fillColor(MUTED)
    .text('mL', x + 4, top - 8, { width: 30 });
  doc.lineWidth(1.6).strokeColor(rgbHex(ACCENT_RGB));
  exams.forEach((e, n) => {
    const X = px(times[n]);
    const Y = py(e.totalVolumeMl);
    if (n === 0) doc.moveTo(X, Y);
    else doc.lineTo(X, Y);
  });
  if (exams.length > 1) doc.stroke();
  exams.forEach((e, n) => {
    const X = px(times[n]);
    const Y = py(e.totalVolumeMl);
    doc.circle(X, Y, 3).fill(rgbHex(ACCENT_RGB));
    doc
      .font('Helvetica-Bold')
      .fontSize(7.5)
      .fillColor(INK)
      .text(fmt(e.totalVolumeMl), X - 30, Y - 13, { width: 60, align: 'center' });
    doc
      .font('Helvetica')
      .fontSize(7)
      .fillColor(MUTED)
      .text(e.date, X - 35, bottom + 6, { width: 70, align: 'center' });
  });
}

function oppositeLetter(letters: string): string {
  const o: Record<string, string> = { L: 'R', R: 'L', A: 'P', P: 'A', S: 'I', I: 'S' };
  return o[letters[0]] ?? '';
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Renders the report. */
export async function renderReportPdf(input: ReportInput): Promise<RenderedReport> {
  const created = when(input.createdAt);
  const { result, study } = input;
  const { lesions, change, model } = result;
  const withPrior = change !== undefined;
  const pages = withPrior ? 2 : 1;
  const doc = new PDFDocument({
    size: 'A4',
    margin: 0,
    autoFirstPage: true,
    bufferPages: true,
    compress: true,
    info: {
      Title: 'MS Lesion Analysis (AI-generated, not for diagnosis)',
      Author: 'ms-lesion-service',
      Subject: `Analysis ${input.analysisId}`,
      Creator: 'ms-lesion-service',
      Producer: 'ms-lesion-service (pdfkit)',
      CreationDate: created,
      ModDate: created,
    },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });

  // ---- page 1
  if (input.sample === true) sampleMark(doc);
  let y = header(
    doc,
    input,
    `Automated T2/FLAIR lesion segmentation and quantification${input.sample === true ? ' - SAMPLE' : ''}`,
  );
  y = sectionTitle(doc, 'Patient and study', y);
  const colW = (A4.width - 2 * MARGIN - 20) / 2;
  const yl = fields(doc, MARGIN, y, colW, [
    ['Patient', personName(study.patientName)],
    ['Patient ID', study.patientId ?? '-'],
    ['Birth date / sex', `${isoDate(study.patientBirthDate)} / ${study.patientSex ?? '-'}`],
    ['Accession', study.accessionNumber ?? '-'],
  ]);
  const yr = fields(doc, MARGIN + colW + 20, y, colW, [
    [
      'Study date',
      `${isoDate(study.studyDate)}${withPrior ? `  (prior: ${isoDate(change.priorStudyDate)})` : ''}`,
    ],
    ['Study', study.studyDescription ?? '-'],
    ['FLAIR series', result.series.flair.description ?? result.series.flair.seriesInstanceUid],
    ['Report created', created.toISOString().replace('T', ' ').slice(0, 16) + ' UTC'],
  ]);
  y = Math.max(yl, yr) + 6;

  y = sectionTitle(doc, 'Algorithm', y);
  const ym = fields(doc, MARGIN, y, colW, [
    ['Model', `${model.name} (${model.id})`],
    ['Version', model.version],
  ]);
  const ym2 = fields(doc, MARGIN + colW + 20, y, colW, [
    ['Variant', `${model.variant} - ${model.channels.join(' + ')}`],
    ['Why this variant', model.reason],
  ]);
  y = Math.max(ym, ym2) + 6;

  y = sectionTitle(doc, 'Results', y);
  const figures: [string, string, string][] = [
    ['Total lesion volume', fmt(lesions.totalVolumeMl), 'mL'],
    ['Number of lesions', String(lesions.count), ''],
  ];
  if (withPrior) {
    figures.push(
      ['Volume change', signed(change.totalVolumeChangeMl), 'mL'],
      ['New / enlarged', `${change.newCount} / ${change.enlargedCount}`, ''],
      ['Disappeared', String(change.disappearedCount), ''],
    );
  }
  const gap = 8;
  const fw = (A4.width - 2 * MARGIN - gap * (figures.length - 1)) / figures.length;
  figures.forEach(([l, v, u], n) => {
    keyFigure(doc, MARGIN + n * (fw + gap), y, fw, l, v, u);
  });
  y += 60;

  const total = lesions.totalVolumeMl;
  const locRows = LESION_LOCATIONS.map((loc) => [
    LOCATION_LABEL[loc],
    String(lesions.countByLocation[loc]),
    fmt(lesions.volumeByLocationMl[loc]),
    total > 0 ? `${fmt((lesions.volumeByLocationMl[loc] / total) * 100, 0)} %` : '-',
  ]);
  locRows.push(['All locations', String(lesions.count), fmt(total), total > 0 ? '100 %' : '-']);
  const tw = A4.width - 2 * MARGIN;
  y = table(
    doc,
    y,
    [
      { title: 'Location (McDonald 2017)', width: tw * 0.46 },
      { title: 'Lesions', width: tw * 0.16, align: 'right' },
      { title: 'Volume (mL)', width: tw * 0.2, align: 'right' },
      { title: 'Share of volume', width: tw * 0.18, align: 'right' },
    ],
    locRows,
    true,
  );
  y += 12;

  // ---- delineation examples
  y = sectionTitle(doc, 'Delineation examples', y);
  const labels = input.labels ?? input.mask;
  const ks = selectDelineationSlices(labels, {
    count: input.examples ?? 4,
    flair: input.flair,
    ...(input.changeMask === undefined ? {} : { changeMask: input.changeMask }),
  });
  const win = autoWindow(input.flair);
  const bounds = inPlaneBounds(input.flair) ?? undefined;
  const crop =
    bounds === undefined
      ? undefined
      : {
          i0: Math.max(0, bounds.i0 - 2),
          i1: Math.min(input.flair.dims[0], bounds.i1 + 2),
          j0: Math.max(0, bounds.j0 - 2),
          j1: Math.min(input.flair.dims[1], bounds.j1 + 2),
        };
  const footerTop = A4.height - MARGIN - 40;
  const n = Math.max(1, ks.length);
  const labelW = 14;
  const cellW = (A4.width - 2 * MARGIN - labelW - 8 * (n - 1)) / n;
  const captionH = 14;
  const rowsH = footerTop - y - 24 - 2 * captionH - (input.imageCredit === undefined ? 0 : 10);
  const examples: (Box & {
    plainY: number;
    k: number;
    lesionOutlinePixels: number;
    changeOutlinePixels: number;
  })[] = [];
  const rendered = ks.map((k) => {
    const common = { window: win, scale: 1.6, ...(crop === undefined ? {} : { crop }) };
    return {
      k,
      plain: renderOverlaySlice(input.flair, input.mask, k, { ...common, outlines: false }),
      outlined: renderOverlaySlice(input.flair, input.mask, k, {
        ...common,
        ...(input.changeMask === undefined ? {} : { changeMask: input.changeMask }),
      }),
    };
  });
  const aspect = rendered.length === 0 ? 1 : rendered[0].plain.image.height / rendered[0].plain.image.width;
  let w = cellW;
  let h = w * aspect;
  if (2 * h > rowsH) {
    h = rowsH / 2;
    w = h / aspect;
  }
  const rowY = [y, y + h + captionH];
  doc.save();
  for (const [row, title] of [
    [0, 'FLAIR'],
    [1, 'FLAIR + AI outline'],
  ] as const) {
    doc.rotate(-90, { origin: [MARGIN, rowY[row] + h] });
    doc
      .font('Helvetica-Bold')
      .fontSize(7.5)
      .fillColor(MUTED)
      .text(title, MARGIN, rowY[row] + h + 2, { width: h, align: 'center', lineBreak: false });
    doc.rotate(90, { origin: [MARGIN, rowY[row] + h] });
  }
  doc.restore();
  rendered.forEach((r, e) => {
    const x = MARGIN + labelW + e * (cellW + 8) + (cellW - w) / 2;
    for (const row of [0, 1] as const) {
      const img = row === 0 ? r.plain : r.outlined;
      const yy = rowY[row];
      doc.rect(x - 0.5, yy - 0.5, w + 1, h + 1).fill('#000000');
      doc.image(Buffer.from(encodePng(img.image)), x, yy, { width: w, height: h });
      const [toward] = img.mapping.patientOrientation;
      doc.font('Helvetica-Bold').fontSize(7).fillColor('#e8edf2');
      doc.text(oppositeLetter(toward), x + 3, yy + h / 2 - 3, { lineBreak: false });
      doc.text(toward[0], x + w - 8, yy + h / 2 - 3, { lineBreak: false });
    }
    const z = applyAffine(input.flair.affine, [0, 0, r.k]);
    doc
      .font('Helvetica')
      .fontSize(7.5)
      .fillColor(MUTED)
      .text(`Slice ${r.k + 1} of ${input.flair.dims[2]} (${fmt(z[2], 1)} mm)`, x - 4, rowY[1] + h + 3, {
        width: w + 8,
        align: 'center',
        lineBreak: false,
      });
    examples.push({
      page: 1,
      x,
      y: rowY[1],
      plainY: rowY[0],
      width: w,
      height: h,
      k: r.k,
      lesionOutlinePixels: r.outlined.lesionOutlinePixels,
      changeOutlinePixels: r.outlined.changeOutlinePixels,
    });
  });
  const imgBottom = rowY[1] + h + captionH + 6;
  const lx = legendSwatch(doc, MARGIN + labelW, imgBottom, LESION_RGB, 'Lesion outline (AI segmentation)');
  if (input.changeMask !== undefined)
    legendSwatch(doc, lx, imgBottom, CHANGE_RGB, 'New or enlarging since prior');
  if (input.imageCredit !== undefined)
    doc
      .font('Helvetica-Oblique')
      .fontSize(6.5)
      .fillColor(MUTED)
      .text(latin1(input.imageCredit), MARGIN + labelW, imgBottom + 13, {
        width: A4.width - 2 * MARGIN - labelW,
      });
  footer(doc, 1, pages, input);

  // ---- page 2: longitudinal
  let trendBox: Box | undefined;
  if (withPrior) {
    doc.addPage({ size: 'A4', margin: 0 });
    if (input.sample === true) sampleMark(doc);
    y = header(doc, input, 'Longitudinal comparison with the prior exam');
    y = sectionTitle(doc, `Change since the prior exam (${isoDate(change.priorStudyDate)})`, y);
    const pct = change.totalVolumeChangePercent;
    const cw = A4.width - 2 * MARGIN;
    y = table(
      doc,
      y,
      [
        { title: 'Measure', width: cw * 0.55 },
        { title: 'Value', width: cw * 0.45, align: 'right' },
      ],
      [
        ['New lesions', String(change.newCount)],
        ['Enlarged lesions', String(change.enlargedCount)],
        ['Disappeared lesions', String(change.disappearedCount)],
        ['Shrunk / stable lesions', `${change.shrunkCount} / ${change.stableCount}`],
        ['Merged / split lesions', `${change.mergedCount} / ${change.splitCount}`],
        ['Total lesion volume, prior exam', `${fmt(change.priorTotalVolumeMl)} mL`],
        ['Total lesion volume, this exam', `${fmt(lesions.totalVolumeMl)} mL`],
        [
          'Volume change',
          `${signed(change.totalVolumeChangeMl)} mL${pct === null ? '' : `  (${signed(pct, 1)} %)`}`,
        ],
        [
          'Registration to the prior',
          `${change.registration.method}, ${change.registration.metric} ${fmt(change.registration.value, 3)}` +
            (change.registration.ncc === undefined ? '' : `, NCC ${fmt(change.registration.ncc, 2)}`),
        ],
      ],
    );
    y += 14;
    y = sectionTitle(doc, "Lesion load over the patient's exams", y);
    const exams = historyOf(input);
    trendBox = { page: 2, x: MARGIN, y, width: A4.width - 2 * MARGIN, height: 170 };
    trendPlot(doc, trendBox.x, trendBox.y, trendBox.width, trendBox.height, exams);
    y += trendBox.height + 16;

    y = sectionTitle(doc, 'Largest and changed lesions (this exam)', y);
    const newIds = new Set(change.changes.filter((c) => c.class === 'new').flatMap((c) => c.currentIds));
    const enlargedIds = new Set(
      change.changes.filter((c) => c.class === 'enlarged').flatMap((c) => c.currentIds),
    );
    const bySize = [...lesions.lesions].sort((a, b) => b.volumeMl - a.volumeMl || a.id - b.id);
    const changed = bySize.filter((l) => newIds.has(l.id) || enlargedIds.has(l.id));
    const shown = new Set(changed.slice(0, 12));
    for (const l of bySize) if (shown.size < 12) shown.add(l);
    const top = bySize.filter((l) => shown.has(l));
    table(
      doc,
      y,
      [
        { title: '#', width: cw * 0.08, align: 'right' },
        { title: 'Location', width: cw * 0.36 },
        { title: 'Volume (mL)', width: cw * 0.18, align: 'right' },
        { title: 'Longest diameter (mm)', width: cw * 0.22, align: 'right' },
        { title: 'Change', width: cw * 0.16 },
      ],
      top.map((l) => [
        String(l.id),
        LOCATION_LABEL[l.location],
        fmt(l.volumeMl, 3),
        fmt(l.longestDiameterMm, 1),
        newIds.has(l.id) ? 'new' : enlargedIds.has(l.id) ? 'enlarged' : '',
      ]),
    );
    footer(doc, 2, pages, input);
  }
  doc.end();
  await done;
  return {
    pdf: new Uint8Array(Buffer.concat(chunks)),
    layout: {
      pages,
      pageWidth: A4.width,
      pageHeight: A4.height,
      examples,
      ...(trendBox === undefined ? {} : { trendPlot: trendBox }),
    },
  };
}

/** The ReportRenderer port over renderReportPdf. */
export class PdfReportRenderer implements ReportRenderer {
  readonly #examples: number | undefined;

  constructor(options: { examples?: number } = {}) {
    this.#examples = options.examples;
  }

  async renderPdf(request: ReportRequest): Promise<Uint8Array> {
    const r = await renderReportPdf({
      ...request,
      ...(this.#examples === undefined ? {} : { examples: this.#examples }),
    });
    return r.pdf;
  }
}
