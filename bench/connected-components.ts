/**
 * `npm run bench -- connected-components [--repeat N]`: our run-length union-find labelling against
 * scipy.ndimage.label (/usr/bin/python3) on the same 256×256×180 masks — a lesion-like mask (hundreds of
 * ellipsoids of lesion sizes) and a dense 50 % noise worst case — at 6- and 26-connectivity. Prints both
 * median times and checks that the component counts are identical.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Vec3 } from '../domain/model/geometry.ts';
import { labelComponents, type Connectivity } from '../domain/lesions/connected-components.ts';

const DIMS: Vec3 = [256, 256, 180];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function lesionLike(): Uint8Array {
  const [nx, ny, nz] = DIMS;
  const data = new Uint8Array(nx * ny * nz);
  const rand = lcg(7);
  for (let n = 0; n < 400; n++) {
    const c = [20 + rand() * (nx - 40), 20 + rand() * (ny - 40), 15 + rand() * (nz - 30)];
    const r = [1 + rand() * 6, 1 + rand() * 6, 1 + rand() * 4];
    for (let k = Math.floor(c[2] - r[2]); k <= Math.ceil(c[2] + r[2]); k++)
      for (let j = Math.floor(c[1] - r[1]); j <= Math.ceil(c[1] + r[1]); j++)
        for (let i = Math.floor(c[0] - r[0]); i <= Math.ceil(c[0] + r[0]); i++) {
          const d = ((i - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((k - c[2]) / r[2]) ** 2;
          if (d <= 1) data[i + nx * (j + ny * k)] = 1;
        }
  }
  return data;
}

function noise(): Uint8Array {
  const data = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
  const rand = lcg(11);
  for (let p = 0; p < data.length; p++) data[p] = rand() < 0.5 ? 1 : 0;
  return data;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const PY = `
import sys, time, json, numpy as np
from scipy import ndimage
path, conn, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = np.fromfile(path, dtype=np.uint8).reshape(${DIMS[2]}, ${DIMS[1]}, ${DIMS[0]})
st = ndimage.generate_binary_structure(3, 1 if conn == 6 else 3)
ts = []
for _ in range(repeat):
    t = time.perf_counter(); lab, n = ndimage.label(a, structure=st); ts.append((time.perf_counter() - t) * 1000)
print(json.dumps({"ms": sorted(ts)[len(ts)//2], "count": int(n)}))
`;

export function run(argv: string[]): Promise<void> {
  const ri = argv.indexOf('--repeat');
  const repeat = ri >= 0 ? Number(argv[ri + 1]) : 5;
  const dir = join('.tmp', 'bench-cc');
  mkdirSync(dir, { recursive: true });
  const rows: {
    mask: string;
    connectivity: Connectivity;
    foreground: number;
    oursMs: number;
    scipyMs: number;
    oursCount: number;
    scipyCount: number;
  }[] = [];
  for (const [name, make] of [
    ['lesion-like', lesionLike],
    ['noise-50%', noise],
  ] as const) {
    const data = make();
    const file = join(dir, `${name}.u8`);
    writeFileSync(file, data);
    let fg = 0;
    for (const v of data) fg += v;
    for (const conn of [6, 26] as const) {
      labelComponents({ dims: DIMS, data }, conn); // warm-up
      const ts: number[] = [];
      let count = 0;
      for (let r = 0; r < repeat; r++) {
        const t = performance.now();
        count = labelComponents({ dims: DIMS, data }, conn).count;
        ts.push(performance.now() - t);
      }
      const py = JSON.parse(
        execFileSync('/usr/bin/python3', ['-c', PY, file, String(conn), String(repeat)], {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: '1' },
        }),
      ) as { ms: number; count: number };
      rows.push({
        mask: name,
        connectivity: conn,
        foreground: fg,
        oursMs: median(ts),
        scipyMs: py.ms,
        oursCount: count,
        scipyCount: py.count,
      });
    }
  }
  rmSync(dir, { recursive: true, force: true });
  console.log(`connected components on ${DIMS.join('×')} (median of ${repeat})`);
  console.log('mask          conn  foreground   ours ms  scipy ms  ours/scipy  components (ours = scipy)');
  for (const r of rows)
    console.log(
      `${r.mask.padEnd(13)} ${String(r.connectivity).padStart(4)}  ${String(r.foreground).padStart(10)}  ${r.oursMs.toFixed(1).padStart(8)}  ${r.scipyMs.toFixed(1).padStart(8)}  ${(r.oursMs / r.scipyMs).toFixed(2).padStart(10)}  ${r.oursCount} ${r.oursCount === r.scipyCount ? '=' : '≠'} ${r.scipyCount}`,
    );
  console.log(JSON.stringify({ bench: 'connected-components', dims: DIMS, rows }));
  if (rows.some((r) => r.oursCount !== r.scipyCount)) process.exitCode = 1;
  return Promise.resolve();
}
