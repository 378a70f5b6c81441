/*
 * The lesion-load trend page (SMART on FHIR app of ms-lesion-service). Plain browser JavaScript, no framework,
 * no third-party code. It reads FHIR resources through the service's session backend (../api/…): the access
 * token never reaches this page; the page holds only the session handle from its URL fragment and sends it as
 * X-Smart-Session. Everything is drawn with DOM and SVG APIs (textContent, never innerHTML with data).
 */
'use strict';

(function () {
  const LOCAL = 'https://ms-lesion-service.example.org/fhir/CodeSystem/mslesion';
  const LOINC = 'http://loinc.org';
  const CODES = {
    volume: 'total-t2-lesion-volume',
    count: 't2-lesion-count',
    newCount: 'new-t2-lesion-count',
    enlarged: 'enlarging-t2-lesion-count',
    change: 'total-t2-lesion-volume-change',
    changePercent: 'total-t2-lesion-volume-change-percent',
  };
  const SVG = 'http://www.w3.org/2000/svg';

  const handle = new URLSearchParams(location.hash.slice(1)).get('s') || '';
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const res = await fetch(path, {
      headers: { 'X-Smart-Session': handle, Accept: 'application/fhir+json, application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const body = await res.json().catch(() => undefined);
    if (!res.ok) {
      const issue = body && Array.isArray(body.issue) ? body.issue[0] : undefined;
      const code =
        issue && issue.details && issue.details.coding ? issue.details.coding[0].code : 'HTTP_' + res.status;
      const text = issue && issue.details ? issue.details.text : 'the request failed (' + res.status + ')';
      throw new ApiError(res.status, code, text);
    }
    return body;
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const hasCode = (resource, system, code) =>
    Boolean(
      resource.code && (resource.code.coding || []).some((c) => c.system === system && c.code === code),
    );

  const fmt = (v, digits) => (v === undefined || v === null ? '—' : Number(v).toFixed(digits));
  const signed = (v, digits) =>
    v === undefined || v === null ? '—' : (v > 0 ? '+' : v < 0 ? '−' : '±') + Math.abs(v).toFixed(digits);

  function parseDate(s) {
    if (!s) return undefined;
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
    return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  }

  function showDate(d) {
    return d
      ? d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' })
      : 'unknown date';
  }

  function setStatus(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', Boolean(isError));
  }

  /** Exams from the DiagnosticReports and their result Observations (one per study: the newest report). */
  function buildExams(reports, observations) {
    const byId = new Map(observations.map((o) => [o.id, o]));
    const value = (obs, code) => {
      const o = obs.find((x) => hasCode(x, LOCAL, code));
      return o && o.valueQuantity ? o.valueQuantity.value : undefined;
    };
    const exams = [];
    for (const r of reports) {
      const obs = (r.result || [])
        .map((ref) => byId.get(String(ref.reference || '').replace(/^Observation\//, '')))
        .filter(Boolean);
      if (obs.length === 0) continue;
      const change = obs.find((x) => hasCode(x, LOCAL, CODES.change));
      const pct = change && (change.component || []).find((c) => hasCode(c, LOCAL, CODES.changePercent));
      const device = obs.find((x) => x.device && x.device.reference);
      exams.push({
        reportId: r.id,
        date: parseDate(r.effectiveDateTime || (obs[0] && obs[0].effectiveDateTime) || r.issued),
        issued: r.issued || '',
        study: (r.imagingStudy && r.imagingStudy[0] && r.imagingStudy[0].reference) || r.id,
        volume: value(obs, CODES.volume),
        count: value(obs, CODES.count),
        newCount: value(obs, CODES.newCount),
        enlarged: value(obs, CODES.enlarged),
        change: change && change.valueQuantity ? change.valueQuantity.value : undefined,
        changePercent: pct && pct.valueQuantity ? pct.valueQuantity.value : undefined,
        deviceRef: device ? device.device.reference : undefined,
        deviceName: device ? device.device.display : undefined,
        hasPdf: (r.presentedForm || []).some((f) => f.contentType === 'application/pdf'),
        conclusion: r.conclusion || '',
      });
    }
    const latest = new Map();
    for (const e of exams) {
      const prev = latest.get(e.study);
      if (!prev || e.issued > prev.issued) latest.set(e.study, e);
    }
    return [...latest.values()]
      .filter((e) => e.volume !== undefined)
      .sort((a, b) => (a.date ? a.date.getTime() : 0) - (b.date ? b.date.getTime() : 0));
  }

  /** A "nice" axis: n ticks from 0 to at least v (steps 1, 2, 2.5, 5 × 10^k; whole numbers for counts). */
  function axis(v, n, integer) {
    const raw = Math.max(v, integer ? 1 : 0.1) / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const steps = integer ? [1, 2, 3, 4, 5, 6, 8, 10] : [1, 2, 2.5, 4, 5, 10];
    let step = 10 * p;
    for (const m of steps)
      if (m * p >= raw) {
        step = m * p;
        break;
      }
    if (integer) step = Math.max(1, Math.round(step));
    const digits = integer || Number.isInteger(step) ? 0 : step * 10 === Math.round(step * 10) ? 1 : 2;
    return { max: step * n, step, digits };
  }

  /**
   * The trend: two panels sharing the time axis — total volume (mL, line with area) on top, lesion count
   * below — so that neither hides the other (no dual axis).
   */
  function drawTrend(exams) {
    const W = 960;
    const m = { l: 70, r: 36 };
    const top = { y: 30, h: 190 };
    const bottom = { y: 262, h: 92 };
    const H = bottom.y + bottom.h + 40;
    const iw = W - m.l - m.r;
    const times = exams.map((e) => (e.date ? e.date.getTime() : 0));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    const pad = exams.length > 1 ? 40 : 0;
    const x = (t) => (t1 === t0 ? m.l + iw / 2 : m.l + pad + ((t - t0) / (t1 - t0)) * (iw - 2 * pad));
    const va = axis(Math.max(...exams.map((e) => e.volume || 0)) * 1.12, 4, false);
    const ca = axis(Math.max(...exams.map((e) => e.count || 0)) * 1.15, 2, true);
    const yv = (v) => top.y + top.h - (v / va.max) * top.h;
    const yc = (c) => bottom.y + bottom.h - (c / ca.max) * bottom.h;
    const summary = exams
      .map((e) => showDate(e.date) + ': ' + fmt(e.volume, 2) + ' mL, ' + fmt(e.count, 0) + ' lesions')
      .join('; ');
    const root = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H,
      role: 'img',
      'aria-labelledby': 'trend-svg-title trend-svg-desc',
    });
    root.append(
      svg('title', { id: 'trend-svg-title' }, 'Total T2/FLAIR lesion volume and lesion count per exam'),
    );
    root.append(svg('desc', { id: 'trend-svg-desc' }, summary));
    const panel = (p, a, y, title) => {
      root.append(svg('text', { class: 'panel-title', x: m.l, y: p.y - 12 }, title));
      const n = Math.round(a.max / a.step);
      for (let i = 0; i <= n; i++) {
        const v = a.step * i;
        const yy = y(v);
        root.append(svg('line', { class: i === 0 ? 'axis' : 'grid', x1: m.l, x2: m.l + iw, y1: yy, y2: yy }));
        root.append(svg('text', { x: m.l - 10, y: yy + 4, 'text-anchor': 'end' }, v.toFixed(a.digits)));
      }
    };
    panel(top, va, yv, 'Total lesion volume (mL)');
    panel(bottom, ca, yc, 'Number of lesions');
    const pts = exams.map((e, i) => ({ e, x: x(times[i]), yv: yv(e.volume || 0), yc: yc(e.count || 0) }));
    for (const p of pts)
      root.append(svg('line', { class: 'guide', x1: p.x, x2: p.x, y1: top.y, y2: bottom.y + bottom.h }));
    if (pts.length > 1) {
      const base = top.y + top.h;
      const area =
        'M' +
        pts[0].x +
        ',' +
        base +
        pts.map((p) => ' L' + p.x + ',' + p.yv).join('') +
        ' L' +
        pts[pts.length - 1].x +
        ',' +
        base +
        ' Z';
      root.append(svg('path', { class: 'volume-area', d: area }));
      root.append(
        svg('path', { class: 'volume-line', d: 'M' + pts.map((p) => p.x + ',' + p.yv).join(' L') }),
      );
      root.append(svg('path', { class: 'count-line', d: 'M' + pts.map((p) => p.x + ',' + p.yc).join(' L') }));
    }
    for (const p of pts) {
      const label = showDate(p.e.date);
      root.append(
        svg(
          'text',
          { class: 'date-label', x: p.x, y: bottom.y + bottom.h + 24, 'text-anchor': 'middle' },
          label,
        ),
      );
      const v = svg('circle', { class: 'volume-point', cx: p.x, cy: p.yv, r: 6, tabindex: 0 });
      v.append(svg('title', {}, label + ': ' + fmt(p.e.volume, 2) + ' mL'));
      root.append(v);
      root.append(
        svg(
          'text',
          { class: 'value-label', x: p.x, y: p.yv - 14, 'text-anchor': 'middle' },
          fmt(p.e.volume, 2) + ' mL',
        ),
      );
      const c = svg('circle', { class: 'count-point', cx: p.x, cy: p.yc, r: 5, tabindex: 0 });
      c.append(svg('title', {}, label + ': ' + fmt(p.e.count, 0) + ' lesions'));
      root.append(c);
      root.append(
        svg(
          'text',
          { class: 'count-label', x: p.x, y: p.yc - 11, 'text-anchor': 'middle' },
          fmt(p.e.count, 0),
        ),
      );
    }
    $('trend-chart').replaceChildren(root);
  }

  /** Grouped bars: new and enlarging lesions on each follow-up (exams compared with a prior). */
  function drawActivity(exams) {
    const follow = exams.filter((e) => e.newCount !== undefined || e.enlarged !== undefined);
    if (follow.length === 0) {
      $('activity-chart').replaceChildren(
        el('p', { class: 'muted', text: 'No follow-up exam has been compared with a prior yet.' }),
      );
      return;
    }
    const W = 960;
    const H = 200;
    const m = { l: 70, r: 36, t: 22, b: 40 };
    const iw = W - m.l - m.r;
    const ih = H - m.t - m.b;
    const ax = axis(
      Math.max(1, ...follow.map((e) => Math.max(e.newCount || 0, e.enlarged || 0))) * 1.1,
      2,
      true,
    );
    const max = ax.max;
    const y = (v) => m.t + ih - (v / max) * ih;
    const slot = iw / follow.length;
    const bw = Math.min(34, slot / 4);
    const root = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H,
      role: 'img',
      'aria-labelledby': 'act-title act-desc',
    });
    root.append(svg('title', { id: 'act-title' }, 'New and enlarging lesions per follow-up exam'));
    root.append(
      svg(
        'desc',
        { id: 'act-desc' },
        follow
          .map(
            (e) =>
              showDate(e.date) + ': ' + fmt(e.newCount, 0) + ' new, ' + fmt(e.enlarged, 0) + ' enlarging',
          )
          .join('; '),
      ),
    );
    for (let v = ax.step; v <= max; v += ax.step) {
      root.append(svg('line', { class: 'grid', x1: m.l, x2: m.l + iw, y1: y(v), y2: y(v) }));
      root.append(svg('text', { x: m.l - 10, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    root.append(svg('line', { class: 'axis', x1: m.l, x2: m.l + iw, y1: m.t + ih, y2: m.t + ih }));
    root.append(svg('text', { x: m.l - 10, y: m.t + ih + 4, 'text-anchor': 'end' }, '0'));
    follow.forEach((e, i) => {
      const cx = m.l + slot * (i + 0.5);
      const bars = [
        ['bar-new', e.newCount || 0, 'new', -bw - 2],
        ['bar-enlarging', e.enlarged || 0, 'enlarging', 2],
      ];
      for (const [cls, v, what, dx] of bars) {
        const r = svg('rect', {
          class: cls,
          x: cx + dx,
          y: y(v),
          width: bw,
          height: Math.max(0.5, m.t + ih - y(v)),
          rx: 2,
        });
        r.append(svg('title', {}, showDate(e.date) + ': ' + v + ' ' + what));
        root.append(r);
        root.append(svg('text', { x: cx + dx + bw / 2, y: y(v) - 6, 'text-anchor': 'middle' }, String(v)));
      }
      root.append(svg('text', { x: cx, y: m.t + ih + 22, 'text-anchor': 'middle' }, showDate(e.date)));
    });
    $('activity-chart').replaceChildren(root);
  }

  function card(label, value, unit, note, noteClass, valueClass) {
    const v = el('div', { class: 'value' + (valueClass ? ' ' + valueClass : ''), text: value });
    if (unit) v.append(' ', el('small', { text: unit }));
    return el('div', { class: 'card' }, [
      el('div', { class: 'label', text: label }),
      v,
      el('div', { class: 'note' + (noteClass ? ' ' + noteClass : ''), text: note }),
    ]);
  }

  function drawCards(exams) {
    const last = exams[exams.length - 1];
    const first = exams[0];
    const delta = last.change;
    const cards = [
      card('Latest total volume', fmt(last.volume, 2), 'mL', showDate(last.date)),
      card('Latest lesion count', fmt(last.count, 0), 'lesions', showDate(last.date)),
      card(
        'Since the prior exam',
        last.newCount === undefined
          ? '—'
          : fmt(last.newCount, 0) + ' new · ' + fmt(last.enlarged, 0) + ' enlarging',
        '',
        delta === undefined
          ? 'no prior exam compared'
          : 'volume ' +
              signed(delta, 2) +
              ' mL' +
              (last.changePercent === undefined ? '' : ' (' + signed(last.changePercent, 1) + ' %)'),
        delta === undefined ? '' : delta > 0 ? 'up' : delta < 0 ? 'down' : '',
        'text',
      ),
      card(
        'Exams analysed',
        String(exams.length),
        '',
        exams.length > 1 ? showDate(first.date) + ' – ' + showDate(last.date) : 'one exam so far',
      ),
    ];
    $('cards').replaceChildren(...cards);
  }

  function drawTable(exams, devices) {
    const rows = exams
      .slice()
      .reverse()
      .map((e, i) => {
        const dev = e.deviceRef ? devices.get(e.deviceRef) : undefined;
        const model = dev ? dev.name + ' ' + dev.version : e.deviceName || '—';
        const link = e.hasPdf
          ? el('a', {
              class: 'pdf-link',
              href: '../api/report/' + encodeURIComponent(e.reportId) + '?s=' + encodeURIComponent(handle),
              target: '_blank',
              rel: 'noopener',
              text: 'PDF report',
              'aria-label': 'PDF report of ' + showDate(e.date),
            })
          : el('span', { class: 'muted', text: 'not available' });
        const tr = el('tr', i === 0 ? { class: 'latest' } : {}, [
          el('th', { scope: 'row', text: showDate(e.date) }),
          el('td', { class: 'num', text: fmt(e.volume, 2) }),
          el('td', { class: 'num', text: fmt(e.count, 0) }),
          el('td', { class: 'num', text: fmt(e.newCount, 0) }),
          el('td', { class: 'num', text: fmt(e.enlarged, 0) }),
          el('td', {
            class: 'num',
            text:
              e.change === undefined
                ? '—'
                : signed(e.change, 2) +
                  ' mL' +
                  (e.changePercent === undefined ? '' : ' (' + signed(e.changePercent, 1) + ' %)'),
          }),
          el('td', { text: model }),
          el('td', {}, [link]),
        ]);
        tr.title = e.conclusion;
        return tr;
      });
    $('exams').tBodies[0].replaceChildren(...rows);
  }

  async function devicesOf(exams) {
    const out = new Map();
    for (const ref of new Set(exams.map((e) => e.deviceRef).filter(Boolean))) {
      try {
        const d = await api('../api/fhir/Device/' + encodeURIComponent(ref.replace(/^Device\//, '')));
        const names = d.deviceName || [];
        const name = (names.find((n) => n.type === 'model-name') || names[0] || {}).name || 'model';
        const version = ((d.version || []).find((v) => !v.type) || (d.version || [])[0] || {}).value || '';
        out.set(ref, { name, version });
      } catch {
        // the EHR may not share Devices: the Observation's device display is shown instead
      }
    }
    return out;
  }

  async function main() {
    if (!/^[0-9a-f]{16}$/.test(handle)) {
      setStatus('No app session: launch the app from the patient chart in the EHR.', true);
      return;
    }
    const ctx = await api('../api/context');
    $('patient-id').textContent = ctx.patient.id;
    $('patient-name').textContent = ctx.patient.name || 'not shared by the EHR';
    if (!ctx.patient.name) $('patient-name').classList.add('unshared');
    $('source').textContent = ctx.dataSource === 'ehr' ? 'EHR FHIR server' : 'ms-lesion-service';
    const codes = Object.values(CODES)
      .filter((c) => c !== CODES.changePercent)
      .map((c) => LOCAL + '|' + c)
      .join(',');
    const [obsBundle, reportBundle] = await Promise.all([
      api('../api/fhir/Observation?_count=1000&code=' + encodeURIComponent(codes)),
      api('../api/fhir/DiagnosticReport?_count=1000&code=' + encodeURIComponent(LOINC + '|24590-2')),
    ]);
    const observations = (obsBundle.entry || []).map((e) => e.resource);
    const reports = (reportBundle.entry || []).map((e) => e.resource);
    const exams = buildExams(reports, observations);
    if (exams.length === 0) {
      setStatus('No analysed MRI exam for this patient yet.');
      return;
    }
    const devices = await devicesOf(exams);
    drawCards(exams);
    drawTrend(exams);
    drawActivity(exams);
    drawTable(exams, devices);
    const models = [
      ...new Set(
        exams.map((e) => {
          const d = e.deviceRef ? devices.get(e.deviceRef) : undefined;
          return d ? d.name + ' ' + d.version : e.deviceName || 'unknown model';
        }),
      ),
    ];
    $('provenance').textContent =
      'Measurements by ' +
      models.join(', ') +
      ' (automated T2/FLAIR lesion segmentation). ' +
      'Lesion counts and volumes depend on scanner, protocol and model; compare exams acquired alike.';
    for (const id of ['cards', 'trend-panel', 'activity-panel', 'table-panel']) $(id).hidden = false;
    setStatus('');
    document.body.dataset.ready = 'true';
  }

  $('logout').addEventListener('click', () => {
    void fetch('../logout', {
      method: 'POST',
      headers: { 'X-Smart-Session': handle },
      credentials: 'same-origin',
    }).finally(() => {
      setStatus('Signed out. Launch the app again from the EHR to see results.');
      for (const id of ['cards', 'trend-panel', 'activity-panel', 'table-panel']) $(id).hidden = true;
    });
  });

  main().catch((e) => {
    const expired = e instanceof ApiError && e.status === 401;
    setStatus(
      expired
        ? 'The session has ended (' + e.code + '). Launch the app again from the EHR.'
        : 'The results could not be loaded: ' +
            e.message +
            (e instanceof ApiError ? ' (' + e.code + ')' : ''),
      true,
    );
    document.body.dataset.ready = 'error';
  });
})();
