/**
 * The trend page as a SMART on FHIR app, end to end in real headless Chromium: a test EHR (oidc-provider:
 * authorization code + PKCE, login form, launch contexts, fhirUser; a patient-scoped FHIR server) launches the
 * app (EHR launch with iss + launch), the user signs in, the service exchanges the code and opens a
 * server-side session, and the page draws the lesion-load trend of a patient with three succeeded analyses in
 * the service's store (volume/count chart, new/enlarging bars, exam table with PDF links, model version, the
 * "not for diagnosis" banner). Also: no token ever reaches the page; a second tab launched standalone for
 * another patient does not disturb the first; sign-out; a denied authorization, a foreign iss, a callback not
 * started by this browser and a missing session are coded errors; and with smart.dataSource = ehr (a
 * confidential client) the same page reads the results from the EHR's FHIR server with the user's token.
 *
 * A screenshot of the page is written to $SMART_SCREENSHOT (default: the OS temp dir).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PDFDocument from 'pdfkit';
import { compose, type Composition } from '../../compose.ts';
import { loadConfig } from '../../config.ts';
import { SYSTEM } from '../../adapters/fhir/codes.ts';
import { studyFromAnalysis } from '../../adapters/fhir/fhir-results.ts';
import { allResources, buildResultResources } from '../../adapters/fhir/result-bundle.ts';
import { sampleAnalysis } from '../../adapters/fhir/testing/sample-analysis.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import type { Analysis, AnalysisResult, LesionLocation } from '../../domain/model/analysis.ts';
import { hasChromium, launchChromium, type Browser, type Page } from '../helpers/chromium.ts';
import { freePort } from '../helpers/orthanc.ts';
import { errorCode } from '../contracts/http-client.ts';
import {
  PASSWORD,
  putResources,
  SMART_CLIENT_ID,
  SMART_CLIENT_SECRET,
  SMART_CONFIDENTIAL_ID,
  startSmartEhr,
  USERNAME,
  type SmartEhr,
} from '../integration/support/smart-ehr.ts';

const skip = hasChromium() ? false : 'chromium is not installed (apt-get install chromium)';

interface Exam {
  readonly date: string;
  readonly volume: number;
  readonly count: number;
  readonly change?: { readonly newCount: number; readonly enlarged: number };
  /** Ordered over HL7 v2 with the patient's MRN (not the FHIR Patient id). */
  readonly byMrn?: boolean;
}
const MRN = { system: 'urn:oid:1.2.3.4.5.6.7', value: 'MRN-0026' };
const PAT1: Exam[] = [
  { date: '20240312', volume: 5.42, count: 14 },
  { date: '20250320', volume: 6.91, count: 17, change: { newCount: 3, enlarged: 1 } },
  { date: '20260302', volume: 8.2, count: 19, change: { newCount: 2, enlarged: 2 }, byMrn: true },
];

function tinyPdf(title: string): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const doc = new PDFDocument({ size: 'A4' });
    const chunks: Buffer[] = [];
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => {
      resolve(new Uint8Array(Buffer.concat(chunks)));
    });
    doc.fontSize(16).text(title);
    doc.end();
  });
}

/** A succeeded analysis of `patient` shaped like the pipeline's output for one exam. */
function examAnalysis(patient: string, exam: Exam, i: number, prior?: Exam): Analysis {
  const uid = `1.2.826.0.1.3680043.8.498.4${patient === 'pat-1' ? 1 : 2}00${i}`;
  const s = sampleAnalysis({
    lesions: exam.count,
    withPrior: prior !== undefined,
    order: {
      patientId: exam.byMrn === true ? MRN.value : patient,
      patientIdSystem: exam.byMrn === true ? MRN.system : SYSTEM.PATIENT_RESOURCE_ID,
      studyInstanceUid: uid,
      placerOrderNumber: `T-${patient}-${i}`,
      priorStudyInstanceUid: prior === undefined ? undefined : `${uid.slice(0, -1)}${i - 1}`,
      orderReference: undefined,
    },
  });
  const r = s.result!;
  const f = exam.volume / r.lesions.totalVolumeMl;
  const byLoc = Object.fromEntries(
    Object.entries(r.lesions.volumeByLocationMl).map(([k, v]) => [k, v * f]),
  ) as Record<LesionLocation, number>;
  const result: AnalysisResult = {
    ...r,
    studyDate: exam.date,
    lesions: {
      ...r.lesions,
      totalVolumeMl: exam.volume,
      volumeByLocationMl: byLoc,
      lesions: r.lesions.lesions.map((l) => ({ ...l, volumeMl: l.volumeMl * f })),
    },
    ...(prior === undefined || exam.change === undefined || r.change === undefined
      ? {}
      : {
          change: {
            ...r.change,
            priorStudyDate: `${prior.date.slice(0, 4)}-${prior.date.slice(4, 6)}-${prior.date.slice(6)}`,
            newCount: exam.change.newCount,
            enlargedCount: exam.change.enlarged,
            priorTotalVolumeMl: prior.volume,
            totalVolumeChangeMl: exam.volume - prior.volume,
            totalVolumeChangePercent: ((exam.volume - prior.volume) / prior.volume) * 100,
          },
        }),
  };
  return { ...s, result };
}

async function seed(c: Composition, patient: string, exams: readonly Exam[]): Promise<Analysis[]> {
  const out: Analysis[] = [];
  for (const [i, exam] of exams.entries()) {
    const a = examAnalysis(patient, exam, i + 1, i === 0 ? undefined : exams[i - 1]);
    const { analysis } = await c.store.create(a.order, new Date());
    const pdf = await tinyPdf(`MS lesion report ${patient} ${exam.date}`);
    const ref = await c.artifacts.put(analysis.id, 'report.pdf', pdf, 'application/pdf');
    const t = new Date();
    out.push(
      await c.store.update(
        analysis.id,
        {
          status: 'succeeded',
          progress: 100,
          result: a.result!,
          finishedAt: t.toISOString(),
          artifacts: [ref],
        },
        t,
      ),
    );
  }
  return out;
}

interface Service {
  readonly base: string;
  readonly c: Composition;
  readonly server: Server;
  readonly dir: string;
}

async function startService(port: number, ehr: SmartEhr, extra: Record<string, string>): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-smart-'));
  mkdirSync(join(dir, 'models'));
  const base = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    env: {
      MSLESION_DATA_DIR: dir,
      MSLESION_MODELS_DIR: join(dir, 'models'),
      MSLESION_VALIDATE_RESPONSES: 'true',
      MSLESION_PUBLIC_BASE_URL: base,
      MSLESION_SMART_ISSUERS: ehr.fhirBaseUrl,
      MSLESION_SMART_STANDALONE_ISS: ehr.fhirBaseUrl,
      ...extra,
    },
  });
  const c = await compose(config, { logger: createLogger({ level: 'silent' }) });
  const server = createServer(c.app);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { base, c, server, dir };
}

async function stopService(s: Service | undefined): Promise<void> {
  if (s === undefined) return;
  s.server.closeAllConnections();
  await new Promise<void>((r) =>
    s.server.close(() => {
      r();
    }),
  );
  await s.c.close();
  rmSync(s.dir, { recursive: true, force: true });
}

/** Goes through the EHR's pages (sign-in, patient picker) until the browser is back at the app. */
async function signIn(page: Page, ehr: SmartEhr, patient?: string): Promise<void> {
  for (let step = 0; step < 4; step++) {
    await page.waitFor(
      `location.href.startsWith(${JSON.stringify(`${ehr.issuer}/interaction/`)}) || location.pathname.startsWith('/smart/')`,
    );
    const where = await page.evaluate<string>(
      `document.querySelector('[name=password]') ? 'login' : document.querySelector('[name=patient]') ? 'picker' : 'elsewhere'`,
    );
    if (where === 'elsewhere') return;
    const before = await page.evaluate<string>('location.href');
    await page.evaluate(`(() => {
      if (document.querySelector('[name=login]')) {
        document.querySelector('[name=login]').value = ${JSON.stringify(USERNAME)};
        document.querySelector('[name=password]').value = ${JSON.stringify(PASSWORD)};
      }
      ${patient === undefined ? '' : `if (document.querySelector('[name=patient]')) document.querySelector('[name=patient]').value = ${JSON.stringify(patient)};`}
      document.querySelector('button[value=allow]').click();
      return true;
    })()`);
    await page.waitFor(`location.href !== ${JSON.stringify(before)} && document.readyState === 'complete'`);
  }
}

interface PageFacts {
  readonly ready: string | undefined;
  readonly patientId: string;
  readonly banner: string;
  readonly volumePoints: number;
  readonly countPoints: number;
  readonly bars: number;
  readonly rows: string[][];
  readonly chartDesc: string;
  readonly provenance: string;
  readonly pdfLinks: number;
  readonly cards: string[];
  readonly status: string;
}

const facts = (page: Page) =>
  page.evaluate<PageFacts>(`({
    ready: document.body.dataset.ready,
    patientId: document.getElementById('patient-id').textContent,
    banner: document.querySelector('.ai-banner').textContent.replace(/\\s+/g, ' ').trim(),
    volumePoints: document.querySelectorAll('#trend-chart circle.volume-point').length,
    countPoints: document.querySelectorAll('#trend-chart circle.count-point').length,
    bars: document.querySelectorAll('#activity-chart rect').length,
    rows: [...document.querySelectorAll('#exams tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent.trim())),
    chartDesc: document.querySelector('#trend-chart desc')?.textContent ?? '',
    provenance: document.getElementById('provenance').textContent,
    pdfLinks: document.querySelectorAll('a.pdf-link').length,
    cards: [...document.querySelectorAll('.card .value')].map((e) => e.textContent.trim()),
    status: document.getElementById('status').textContent,
  })`);

describe('SMART on FHIR trend page in Chromium', { skip }, () => {
  let ehr: SmartEhr;
  let svc: Service | undefined;
  let svcEhr: Service | undefined;
  let browser: Browser;
  let port: number;
  let portEhr: number;

  before(async () => {
    port = await freePort();
    portEhr = await freePort();
    ehr = await startSmartEhr({
      redirectUris: [`http://127.0.0.1:${port}/smart/callback`, `http://127.0.0.1:${portEhr}/smart/callback`],
      patients: ['pat-1', 'pat-2'],
    });
    // the EHR's patients: pat-1 also carries the MRN its HL7-ordered exam was filed under
    await ehr.repo.createResource(
      { resourceType: 'Patient', id: 'pat-1', identifier: [MRN], name: [{ given: ['Jane'], family: 'Doe' }] },
      undefined,
      true,
    );
    await ehr.repo.createResource(
      { resourceType: 'Patient', id: 'pat-2', name: [{ given: ['John'], family: 'Roe' }] },
      undefined,
      true,
    );
    svc = await startService(port, ehr, {
      MSLESION_SMART_CLIENT_ID: SMART_CLIENT_ID,
      MSLESION_SMART_SCOPE:
        'launch openid fhirUser patient/Observation.rs patient/DiagnosticReport.rs patient/Patient.r',
    });
    await seed(svc.c, 'pat-1', PAT1);
    await seed(svc.c, 'pat-2', [{ date: '20260110', volume: 1.3, count: 4 }]);
    browser = await launchChromium();
  });

  after(async () => {
    await browser.close();
    await stopService(svc);
    await stopService(svcEhr);
    await ehr.stop();
  });

  it("EHR launch → sign-in → the page draws the patient's lesion-load trend from the service's results", async () => {
    const page = await browser.newPage({ width: 1280, height: 900 });
    const t0 = Date.now();
    const launch = ehr.createLaunch('pat-1');
    await page.goto(`${svc!.base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${launch}`);
    await signIn(page, ehr);
    await page.waitFor(`location.pathname === '/smart/app/index.html' && document.body.dataset.ready`);
    const ms = Date.now() - t0;
    const f = await facts(page);
    assert.equal(f.ready, 'true', f.status);
    assert.equal(f.patientId, 'pat-1');
    assert.equal(
      await page.evaluate<string>(`document.getElementById('patient-name').textContent`),
      'Jane Doe',
    );
    assert.match(f.banner, /AI-generated measurements — not for diagnosis/);
    assert.equal(f.volumePoints, 3);
    assert.equal(f.countPoints, 3);
    assert.equal(f.bars, 4, 'two follow-ups × (new, enlarging)');
    assert.equal(f.rows.length, 3);
    assert.deepEqual(
      f.rows.map((r) => r.slice(1, 5)),
      [
        ['8.20', '19', '2', '2'],
        ['6.91', '17', '3', '1'],
        ['5.42', '14', '—', '—'],
      ],
    );
    assert.match(f.rows[0][0], /2026/);
    assert.match(f.rows[0][5], /^\+1\.29 mL \(\+18\.7 %\)$/);
    assert.equal(f.rows[0][6], 'MS lesion 3D U-Net 1.0.0', 'model and version from the Device');
    assert.equal(f.pdfLinks, 3);
    assert.match(f.chartDesc, /5\.42 mL, 14 lesions.*8\.20 mL, 19 lesions/);
    assert.match(f.provenance, /MS lesion 3D U-Net 1\.0\.0/);
    assert.deepEqual(f.cards.slice(0, 2), ['8.20 mL', '19 lesions']);
    // the PDF link works (same session), and the report is that exam's
    const pdf = await page.evaluate<{ status: number; type: string; head: string }>(`(async () => {
      const r = await fetch(document.querySelector('a.pdf-link').href);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 5)) };
    })()`);
    assert.deepEqual(pdf, { status: 200, type: 'application/pdf', head: '%PDF-' });
    // no token in the page: HttpOnly cookie, nothing stored, nothing in the DOM
    const exposed = await page.evaluate<{ cookie: string; local: number; session: number; jwt: boolean }>(`({
      cookie: document.cookie,
      local: localStorage.length,
      session: sessionStorage.length,
      jwt: document.documentElement.outerHTML.includes('eyJ'),
    })`);
    assert.deepEqual(exposed, { cookie: '', local: 0, session: 0, jwt: false });
    assert.equal(ehr.issued.at(-1)?.patient, 'pat-1');
    const png = await page.screenshot();
    const out = process.env.SMART_SCREENSHOT ?? join(tmpdir(), 'trends-page.png');
    writeFileSync(out, png);
    assert.ok(png.length > 20_000, `screenshot of ${png.length} bytes`);
    console.log(`launch → sign-in → chart drawn: ${ms} ms; screenshot ${out} (${png.length} bytes)`);
    await page.close();
  });

  it('a second tab (standalone launch, another patient) does not disturb the first; sign-out ends the session', async () => {
    const one = await browser.newPage();
    await one.goto(
      `${svc!.base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${ehr.createLaunch('pat-1')}`,
    );
    await signIn(one, ehr);
    await one.waitFor(`document.body.dataset.ready`);
    const two = await browser.newPage();
    await two.goto(`${svc!.base}/smart/launch`);
    await signIn(two, ehr, 'pat-2');
    await two.waitFor(`location.pathname === '/smart/app/index.html' && document.body.dataset.ready`);
    const f2 = await facts(two);
    assert.equal(f2.patientId, 'pat-2');
    assert.equal(f2.rows.length, 1);
    assert.equal(f2.bars, 0);
    await one.reload();
    await one.waitFor(`document.body.dataset.ready`);
    const f1 = await facts(one);
    assert.equal(f1.patientId, 'pat-1');
    assert.equal(f1.rows.length, 3);
    // sign out in tab one: its session is gone, tab two's is not
    await one.evaluate(`document.getElementById('logout').click(), true`);
    await one.waitFor(`document.getElementById('status').textContent.startsWith('Signed out')`);
    const status = (p: Page) =>
      p.evaluate<number>(
        `fetch('../api/context', { headers: { 'X-Smart-Session': new URLSearchParams(location.hash.slice(1)).get('s') } }).then((r) => r.status)`,
      );
    assert.equal(await status(one), 401);
    assert.equal(await status(two), 200);
    await one.close();
    await two.close();
  });

  it('denied authorization, foreign iss, a callback this browser did not start, no session: coded errors', async () => {
    const page = await browser.newPage();
    ehr.denyNext();
    await page.goto(
      `${svc!.base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${ehr.createLaunch('pat-1')}`,
    );
    await signIn(page, ehr);
    await page.waitFor(`location.pathname === '/smart/callback'`);
    assert.match(await page.evaluate<string>('document.body.textContent'), /SMART\.AUTHORIZATION_DENIED/);
    await page.close();

    const foreign = await fetch(
      `${svc!.base}/smart/launch?iss=${encodeURIComponent('https://evil.example/fhir')}&launch=x`,
      { redirect: 'manual' },
    );
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /SMART\.ISSUER_NOT_ALLOWED/);
    // a launch started here, completed elsewhere (no state cookie: login CSRF / code injection)
    const started = await fetch(`${svc!.base}/smart/launch`, { redirect: 'manual' });
    assert.equal(started.status, 302);
    const authorize = new URL(started.headers.get('location') ?? '');
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorize.searchParams.get('aud'), ehr.fhirBaseUrl);
    assert.match(authorize.searchParams.get('scope') ?? '', /launch\/patient/);
    assert.match(started.headers.get('set-cookie') ?? '', /HttpOnly; SameSite=Lax/);
    const state = authorize.searchParams.get('state') ?? '';
    const replay = await fetch(`${svc!.base}/smart/callback?code=abc&state=${encodeURIComponent(state)}`, {
      redirect: 'manual',
    });
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /SMART\.BAD_STATE/);
    const none = await fetch(`${svc!.base}/smart/api/context`, {
      headers: { 'x-smart-session': '0123456789abcdef' },
    });
    assert.equal(none.status, 401);
    assert.equal(errorCode(await none.json()), 'SMART.NO_SESSION');
    const page2 = await browser.newPage();
    await page2.goto(`${svc!.base}/smart/app/index.html`);
    await page2.waitFor(`document.getElementById('status').classList.contains('error')`);
    assert.match(
      await page2.evaluate<string>(`document.getElementById('status').textContent`),
      /launch the app/i,
    );
    await page2.close();
  });

  it('with smart.dataSource = ehr (confidential client), the page reads the results from the EHR with the token', async () => {
    // the EHR holds pat-1's results as the service's FHIR delivery pushed them (PDF inline)
    for (const [i, exam] of PAT1.entries()) {
      const a = examAnalysis('pat-1', exam, i + 1, i === 0 ? undefined : PAT1[i - 1]);
      const pushed = { ...a, id: `5a0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c0${i}` };
      const r = buildResultResources(pushed, studyFromAnalysis(pushed), {
        pdf: await tinyPdf(`pushed report ${exam.date}`),
        patientReference: 'Patient/pat-1', // the push client resolves the MRN to the EHR's Patient
      });
      await putResources(ehr, allResources(r));
    }
    svcEhr = await startService(portEhr, ehr, {
      MSLESION_SMART_CLIENT_ID: SMART_CONFIDENTIAL_ID,
      MSLESION_SMART_CLIENT_SECRET: SMART_CLIENT_SECRET,
      MSLESION_SMART_DATA_SOURCE: 'ehr',
      MSLESION_SMART_SCOPE:
        'launch openid fhirUser patient/Observation.rs patient/DiagnosticReport.rs patient/Patient.r',
    });
    const page = await browser.newPage();
    await page.goto(
      `${svcEhr.base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${ehr.createLaunch('pat-1')}`,
    );
    await signIn(page, ehr);
    await page.waitFor(`location.pathname === '/smart/app/index.html' && document.body.dataset.ready`);
    const f = await facts(page);
    assert.equal(f.ready, 'true', f.status);
    assert.equal(
      await page.evaluate<string>(`document.getElementById('patient-name').textContent`),
      'Jane Doe',
    );
    assert.equal(
      await page.evaluate<string>(`document.getElementById('source').textContent`),
      'EHR FHIR server',
    );
    assert.equal(f.volumePoints, 3);
    assert.deepEqual(
      f.rows.map((r) => r[1]),
      ['8.20', '6.91', '5.42'],
    );
    assert.equal(f.rows[0][6], 'MS lesion 3D U-Net', 'the EHR grants no Device read: the reference display');
    const pdf = await page.evaluate<{ status: number; head: string }>(`(async () => {
      const r = await fetch(document.querySelector('a.pdf-link').href);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, head: String.fromCharCode(...b.slice(0, 5)) };
    })()`);
    assert.deepEqual(pdf, { status: 200, head: '%PDF-' });
    await page.close();
  });
});
