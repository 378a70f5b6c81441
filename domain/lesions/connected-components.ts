/**
 * 3-D connected-component labelling of a binary mask (any non-zero voxel is foreground).
 *
 * Algorithm: two passes over *runs* (maximal stretches of foreground along i, the fastest axis).
 * Pass 1 extracts the runs row by row (a row is one (j, k) line) and unions every run with the runs of
 * the already-scanned neighbouring rows it touches (union-find over run indices, roots kept at the
 * earliest run so labels follow scan order). Pass 2 gives each root a consecutive label and paints the
 * runs. Work is proportional to the number of runs, not voxels, after one linear scan.
 *
 * Connectivity: 6 (faces), 18 (faces + edges), 26 (faces + edges + corners). For a run in row (j, k) the
 * earlier rows that can touch it and whether a diagonal step along i is allowed there:
 *   6:  (j−1, k), (j, k−1)                     no diagonal
 *   18: (j−1, k), (j, k−1) with ±1 along i;   (j−1, k−1), (j+1, k−1) without
 *   26: all four rows above with ±1 along i
 * Labels are numbered 1…count in order of each component's first voxel in memory order, which is
 * what scipy.ndimage.label returns for the same structuring element.
 */
import type { Vec3 } from '../model/geometry.ts';
import type { VoxelArray } from '../model/volume.ts';

export type Connectivity = 6 | 18 | 26;

export interface LabelledComponents {
  readonly dims: Vec3;
  /** Label per voxel (0 = background), 1…count. */
  readonly labels: Int32Array;
  readonly count: number;
  /** Voxel count per label; sizes[0] is unused (0). */
  readonly sizes: Int32Array;
}

export interface MaskLike {
  readonly dims: Vec3;
  readonly data: VoxelArray;
}

/** Which earlier rows touch a run, as [dj, dk, allowDiagonalAlongI]. */
function neighbourRows(connectivity: Connectivity): readonly (readonly [number, number, number])[] {
  switch (connectivity) {
    case 6:
      return [
        [-1, 0, 0],
        [0, -1, 0],
      ];
    case 18:
      return [
        [-1, 0, 1],
        [0, -1, 1],
        [-1, -1, 0],
        [1, -1, 0],
      ];
    case 26:
      return [
        [-1, 0, 1],
        [0, -1, 1],
        [-1, -1, 1],
        [1, -1, 1],
      ];
  }
}

export function isConnectivity(n: number): n is Connectivity {
  return n === 6 || n === 18 || n === 26;
}

/** Labels the connected components of the non-zero voxels. */
export function labelComponents(mask: MaskLike, connectivity: Connectivity = 26): LabelledComponents {
  const [nx, ny, nz] = mask.dims;
  const data = mask.data instanceof Uint8Array ? mask.data : toBinary(mask.data);
  const rows = ny * nz;
  const rowFirst = new Int32Array(rows + 1);

  // pass 1a: runs of every row, in memory order
  let cap = Math.max(1024, rows);
  let start = new Int32Array(cap);
  let end = new Int32Array(cap);
  let n = 0;
  for (let row = 0; row < rows; row++) {
    rowFirst[row] = n;
    const base = row * nx;
    const stop = base + nx;
    let p = base;
    while (p < stop) {
      if (data[p] === 0) {
        p++;
        continue;
      }
      const s = p;
      p++;
      while (p < stop && data[p] !== 0) p++;
      if (n === cap) {
        cap *= 2;
        const s2 = new Int32Array(cap);
        s2.set(start);
        start = s2;
        const e2 = new Int32Array(cap);
        e2.set(end);
        end = e2;
      }
      start[n] = s - base;
      end[n] = p - base;
      n++;
    }
  }
  rowFirst[rows] = n;

  // pass 1b: union runs with the touching runs of earlier neighbouring rows
  const parent = new Int32Array(n);
  for (let r = 0; r < n; r++) parent[r] = r;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      const g = parent[parent[x]];
      parent[x] = g; // path halving
      x = g;
    }
    return x;
  };
  const neigh = neighbourRows(connectivity);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const row = j + ny * k;
      const curFirst = rowFirst[row];
      const curEnd = rowFirst[row + 1];
      if (curFirst === curEnd) continue;
      for (const [dj, dk, diag] of neigh) {
        const jj = j + dj;
        const kk = k + dk;
        if (jj < 0 || jj >= ny || kk < 0) continue;
        const nrow = jj + ny * kk;
        let p = rowFirst[nrow];
        const pEnd = rowFirst[nrow + 1];
        let c = curFirst;
        // two-pointer sweep of sorted intervals; runs touch when they overlap after widening by `diag`
        while (p < pEnd && c < curEnd) {
          if (end[p] + diag <= start[c]) p++;
          else if (end[c] + diag <= start[p]) c++;
          else {
            const ra = find(p);
            const rb = find(c);
            if (ra < rb) parent[rb] = ra;
            else if (rb < ra) parent[ra] = rb;
            if (end[p] < end[c]) p++;
            else c++;
          }
        }
      }
    }
  }

  // pass 2: consecutive labels in order of each root (the component's first run), then paint
  const runLabel = new Int32Array(n);
  let count = 0;
  for (let r = 0; r < n; r++) {
    const root = find(r);
    runLabel[r] = root === r ? ++count : runLabel[root];
  }
  const labels = new Int32Array(nx * rows);
  const sizes = new Int32Array(count + 1);
  for (let row = 0; row < rows; row++) {
    const base = row * nx;
    const last = rowFirst[row + 1];
    for (let r = rowFirst[row]; r < last; r++) {
      const lab = runLabel[r];
      const a = base + start[r];
      const b = base + end[r];
      if (b - a > 16) labels.fill(lab, a, b);
      else for (let q = a; q < b; q++) labels[q] = lab;
      sizes[lab] += b - a;
    }
  }
  return { dims: [nx, ny, nz], labels, count, sizes };
}

function toBinary(src: VoxelArray): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let p = 0; p < src.length; p++) out[p] = src[p] !== 0 ? 1 : 0;
  return out;
}

/**
 * Drops components smaller than `minVoxels` and renumbers the rest 1…n by decreasing size (ties: scan
 * order). `order[newLabel]` is the old label.
 */
export function relabelBySize(
  cc: LabelledComponents,
  minVoxels = 1,
): LabelledComponents & { readonly order: Int32Array } {
  const keep: number[] = [];
  for (let l = 1; l <= cc.count; l++) if (cc.sizes[l] >= minVoxels) keep.push(l);
  keep.sort((a, b) => cc.sizes[b] - cc.sizes[a] || a - b);
  const map = new Int32Array(cc.count + 1);
  const order = new Int32Array(keep.length + 1);
  const sizes = new Int32Array(keep.length + 1);
  keep.forEach((old, idx) => {
    map[old] = idx + 1;
    order[idx + 1] = old;
    sizes[idx + 1] = cc.sizes[old];
  });
  const src = cc.labels;
  const labels = new Int32Array(src.length);
  for (let p = 0; p < src.length; p++) {
    const l = src[p];
    if (l !== 0) labels[p] = map[l];
  }
  return { dims: cc.dims, labels, count: keep.length, sizes, order };
}

/**
 * Smallest voxel count whose volume reaches `minVolumeMm3`: the MSSEG/anima convention keeps lesions
 * strictly larger than the threshold, i.e. floor(minVolume / voxelVolume) + 1 voxels.
 */
export function minVoxelsForVolume(minVolumeMm3: number, voxelVolumeMm3: number): number {
  if (minVolumeMm3 <= 0) return 1;
  return Math.floor(minVolumeMm3 / voxelVolumeMm3) + 1;
}
