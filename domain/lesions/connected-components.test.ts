import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vec3 } from '../model/geometry.ts';
import {
  labelComponents,
  minVoxelsForVolume,
  relabelBySize,
  type Connectivity,
} from './connected-components.ts';

function maskOf(dims: Vec3, on: readonly Vec3[]): { dims: Vec3; data: Uint8Array } {
  const data = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (const [i, j, k] of on) data[i + dims[0] * (j + dims[1] * k)] = 1;
  return { dims, data };
}

/** Reference: breadth-first flood fill over explicit neighbour offsets, labels in scan order. */
function bfsLabels(dims: Vec3, data: Uint8Array, conn: Connectivity): { labels: Int32Array; count: number } {
  const [nx, ny, nz] = dims;
  const offs: Vec3[] = [];
  for (let dk = -1; dk <= 1; dk++)
    for (let dj = -1; dj <= 1; dj++)
      for (let di = -1; di <= 1; di++) {
        const m = Math.abs(di) + Math.abs(dj) + Math.abs(dk);
        if (m === 0) continue;
        if (conn === 6 && m > 1) continue;
        if (conn === 18 && m > 2) continue;
        offs.push([di, dj, dk]);
      }
  const labels = new Int32Array(data.length);
  let count = 0;
  const queue = new Int32Array(data.length);
  for (let p = 0; p < data.length; p++) {
    if (data[p] === 0 || labels[p] !== 0) continue;
    count++;
    let head = 0;
    let tail = 0;
    queue[tail++] = p;
    labels[p] = count;
    while (head < tail) {
      const q = queue[head++];
      const i = q % nx;
      const j = Math.floor(q / nx) % ny;
      const k = Math.floor(q / (nx * ny));
      for (const [di, dj, dk] of offs) {
        const a = i + di,
          b = j + dj,
          c = k + dk;
        if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
        const r = a + nx * (b + ny * c);
        if (data[r] !== 0 && labels[r] === 0) {
          labels[r] = count;
          queue[tail++] = r;
        }
      }
    }
  }
  return { labels, count };
}

test('face, edge and corner neighbours join only at the right connectivity', () => {
  const dims: Vec3 = [4, 4, 4];
  // a: (0,0,0); b shares a face with a; c shares only an edge with b; d shares only a corner with c
  const m = maskOf(dims, [
    [0, 0, 0],
    [1, 0, 0],
    [2, 1, 0],
    [3, 2, 1],
  ]);
  assert.equal(labelComponents(m, 6).count, 3); // {a,b}, {c}, {d}
  assert.equal(labelComponents(m, 18).count, 2); // {a,b,c}, {d}
  assert.equal(labelComponents(m, 26).count, 1);
});

test('edge neighbours across slices (dj = +1, dk = −1) are found at 18 and 26', () => {
  const dims: Vec3 = [3, 3, 3];
  const m = maskOf(dims, [
    [1, 1, 1],
    [1, 2, 0], // j+1, k−1: an edge neighbour
  ]);
  assert.equal(labelComponents(m, 6).count, 2);
  assert.equal(labelComponents(m, 18).count, 1);
  const corner = maskOf(dims, [
    [1, 1, 1],
    [2, 2, 0], // i+1, j+1, k−1: a corner
  ]);
  assert.equal(labelComponents(corner, 18).count, 2);
  assert.equal(labelComponents(corner, 26).count, 1);
});

test('labels follow scan order, sizes add up, U-shapes merge through later rows', () => {
  const dims: Vec3 = [5, 3, 1];
  // row 0: X . X . X ; row 1: X . X . X ; row 2: X X X . .  → left U is one component, right column another
  const on: Vec3[] = [
    [0, 0, 0],
    [2, 0, 0],
    [4, 0, 0],
    [0, 1, 0],
    [2, 1, 0],
    [4, 1, 0],
    [0, 2, 0],
    [1, 2, 0],
    [2, 2, 0],
  ];
  const cc = labelComponents(maskOf(dims, on), 6);
  assert.equal(cc.count, 2);
  assert.equal(cc.labels[0], 1);
  assert.equal(cc.labels[2], 1);
  assert.equal(cc.labels[4], 2);
  assert.deepEqual([...cc.sizes], [0, 7, 2]);
});

test('matches a breadth-first reference on random masks for all connectivities', () => {
  let seed = 12345;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (const density of [0.1, 0.3, 0.5]) {
    const dims: Vec3 = [17, 13, 11];
    const data = new Uint8Array(dims[0] * dims[1] * dims[2]);
    for (let p = 0; p < data.length; p++) data[p] = rand() < density ? 1 : 0;
    for (const conn of [6, 18, 26] as const) {
      const ref = bfsLabels(dims, data, conn);
      const got = labelComponents({ dims, data }, conn);
      assert.equal(got.count, ref.count, `count at density ${density}, ${conn}`);
      assert.deepEqual(got.labels, ref.labels, `labels at density ${density}, ${conn}`);
    }
  }
});

test('relabelBySize drops small components and orders by decreasing size', () => {
  const dims: Vec3 = [10, 1, 1];
  // sizes in scan order: 1, 3, 2
  const m = maskOf(dims, [
    [0, 0, 0],
    [2, 0, 0],
    [3, 0, 0],
    [4, 0, 0],
    [6, 0, 0],
    [7, 0, 0],
  ]);
  const r = relabelBySize(labelComponents(m, 26), 2);
  assert.equal(r.count, 2);
  assert.deepEqual([...r.sizes], [0, 3, 2]);
  assert.equal(r.labels[0], 0);
  assert.equal(r.labels[3], 1);
  assert.equal(r.labels[7], 2);
  assert.deepEqual([...r.order], [0, 2, 3]);
});

test('minimum size: strictly more than the volume (anima convention)', () => {
  assert.equal(minVoxelsForVolume(3, 1), 4);
  assert.equal(minVoxelsForVolume(3, 0.72 * 0.72 * 3), 2); // 1.555 mm³ voxels: 2 voxels = 3.1 mm³
  assert.equal(minVoxelsForVolume(0, 1), 1);
});
