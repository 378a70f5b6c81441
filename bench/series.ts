/**
 * `npm run bench -- series [--repeat N] [--series NAME]`: series → volume on the real 170-slice Philips series
 * (256×256 sagittal MPRAGE, test/fixtures/dicom), median of N runs (default 5), each in a fresh Node process
 * so its peak RSS is its own ("fresh process" = cold JIT, as for the CLI; a second run in the same process
 * shows the warm service case). Phases: read the files, parse (structural check + dcmjs), decode the planes,
 * assemble the volume. dcm2niix (-p n -z n) converts the same folder N times beside it for comparison.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageSlicesOf } from '../adapters/dicom/image.ts';
import { parsePart10, type ParsedInstance } from '../adapters/dicom/part10.ts';
import { assembleVolume } from '../domain/imaging/assemble.ts';
import type { ImageSlice } from '../domain/ports/image-source.port.ts';
import { DICOM_FIXTURES, dicomSeriesDir, type DicomFixture } from '../test/helpers/fixtures.ts';

interface RunResult {
  readMs: number;
  parseMs: number;
  decodeMs: number;
  assembleMs: number;
  totalMs: number;
  peakRssMb: number;
  dims: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function once(dir: string): Promise<RunResult> {
  const t0 = performance.now();
  const names = (await readdir(dir)).sort();
  const bytes = await Promise.all(names.map((n) => readFile(join(dir, n))));
  const t1 = performance.now();
  const parsed: ParsedInstance[] = bytes.map((b) => parsePart10(b));
  const t2 = performance.now();
  const slices: ImageSlice[] = parsed.flatMap((p) => imageSlicesOf(p));
  const t3 = performance.now();
  const a = assembleVolume(slices);
  const t4 = performance.now();
  return {
    readMs: t1 - t0,
    parseMs: t2 - t1,
    decodeMs: t3 - t2,
    assembleMs: t4 - t3,
    totalMs: t4 - t0,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    dims: [...a.volume.dims],
  };
}

function dcm2niix(dir: string, out: string): { ms: number; peakRssMb?: number } | undefined {
  if (!existsSync('/usr/bin/dcm2niix')) return undefined;
  const args = ['-p', 'n', '-z', 'n', '-b', 'n', '-f', 'bench', '-o', out, dir];
  if (existsSync('/usr/bin/time')) {
    const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', '/usr/bin/dcm2niix', ...args], {
      encoding: 'utf8',
    });
    const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
    if (m !== null) return { ms: Number(m[1]) * 1000, peakRssMb: Number(m[2]) / 1024 };
  }
  const t0 = performance.now();
  execFileSync('/usr/bin/dcm2niix', args, { stdio: 'ignore' });
  return { ms: performance.now() - t0 };
}

export async function run(argv: string[]): Promise<void> {
  const child = argv.indexOf('--child');
  if (child >= 0) {
    const cold = await once(argv[child + 1]);
    const warm = await once(argv[child + 1]);
    process.stdout.write(JSON.stringify({ cold, warm }) + '\n');
    return;
  }
  const rx = argv.indexOf('--repeat');
  const repeat = rx >= 0 ? Math.max(1, Number(argv[rx + 1])) : 5;
  const sx = argv.indexOf('--series');
  const name = (sx >= 0 ? argv[sx + 1] : 'philips_ingenia_t1_mprage') as DicomFixture;
  if (!DICOM_FIXTURES.includes(name)) throw new Error(`--series must be one of ${DICOM_FIXTURES.join(', ')}`);
  const dir = dicomSeriesDir(name);
  const files = (await readdir(dir)).length;
  const self = fileURLToPath(import.meta.url);
  const runs: RunResult[] = [];
  const warmRuns: RunResult[] = [];
  for (let r = 0; r < repeat; r++) {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(self)}); await m.run(['--child', ${JSON.stringify(dir)}]);`,
      ],
      { encoding: 'utf8' },
    );
    const r2 = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { cold: RunResult; warm: RunResult };
    runs.push(r2.cold);
    warmRuns.push(r2.warm);
  }
  const tmp = await mkdtemp(join(tmpdir(), 'bench-d2n-'));
  const ref: { ms: number; peakRssMb?: number }[] = [];
  try {
    for (let r = 0; r < repeat; r++) {
      const x = dcm2niix(dir, tmp);
      if (x === undefined) break;
      ref.push(x);
      await rm(join(tmp, 'bench.nii'), { force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const m = (k: keyof Omit<RunResult, 'dims'>): number => median(runs.map((x) => x[k]));
  const w = (k: keyof Omit<RunResult, 'dims'>): number => median(warmRuns.map((x) => x[k]));
  const rows: [string, string][] = [
    ['series', `${name}: ${files} files → ${runs[0].dims.join('×')}`],
    ['runs', String(repeat)],
    ['read files (ms, median)', m('readMs').toFixed(0)],
    ['parse: structure + dcmjs (ms)', m('parseMs').toFixed(0)],
    ['decode planes (ms)', m('decodeMs').toFixed(0)],
    ['assemble volume (ms)', m('assembleMs').toFixed(0)],
    ['total, fresh process (ms, median)', m('totalMs').toFixed(0)],
    ['total, second run in-process (ms)', `${w('totalMs').toFixed(0)} (parse ${w('parseMs').toFixed(0)})`],
    ['peak RSS (MB, median)', m('peakRssMb').toFixed(0)],
    [
      'dcm2niix -p n (ms, median)',
      ref.length === 0 ? 'not installed' : median(ref.map((x) => x.ms)).toFixed(0),
    ],
    [
      'dcm2niix peak RSS (MB)',
      ref.length === 0 || ref[0].peakRssMb === undefined
        ? 'n/a'
        : median(ref.map((x) => x.peakRssMb ?? 0)).toFixed(0),
    ],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(36)} ${v}`);
  console.log(
    JSON.stringify({
      bench: 'series',
      series: name,
      files,
      runs,
      medianMs: {
        read: m('readMs'),
        parse: m('parseMs'),
        decode: m('decodeMs'),
        assemble: m('assembleMs'),
        total: m('totalMs'),
      },
      warmMedianMs: { parse: w('parseMs'), total: w('totalMs') },
      warmRuns,
      peakRssMb: m('peakRssMb'),
      dcm2niix: ref,
    }),
  );
}
