import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyAffine, type Mat4, type Vec3 } from '../../domain/model/geometry.ts';
import { isDomainError } from '../../domain/errors.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import {
  formatItkTransform,
  parseItkTransform,
  parseItkTransformEntries,
  readItkTransform,
  writeItkTransform,
} from './itk-transform.ts';

function close(a: readonly number[], b: readonly number[], tol = 1e-9): void {
  assert.equal(a.length, b.length);
  for (let x = 0; x < a.length; x++)
    assert.ok(Math.abs(a[x] - b[x]) <= tol, `element ${x}: ${a[x]} vs ${b[x]}`);
}

test('reads the dataset MatrixOffsetTransformBase file: x ↦ A(x − c) + t + c', async () => {
  const m = await readItkTransform(openMs('longitudinal', 'patient01', 'study1_FLAIR_to_common_space.txt'));
  const A = [
    0.999772, 0.0124779, -0.0230905, -0.0132453, 0.997771, -0.0575935, 0.0227571, 0.0554092, 0.996561,
  ];
  const t: Vec3 = [-0.47633, -1.08648, 4.15365];
  const c: Vec3 = [0.431239, 13.066, -14.9495];
  const x: Vec3 = [12.5, -40, 33];
  const expected = [0, 1, 2].map(
    (r) =>
      A[3 * r] * (x[0] - c[0]) + A[3 * r + 1] * (x[1] - c[1]) + A[3 * r + 2] * (x[2] - c[2]) + t[r] + c[r],
  );
  close(applyAffine(m, x), expected, 1e-9);
  // at the centre the transform is a pure translation by t
  close(applyAffine(m, c), [c[0] + t[0], c[1] + t[1], c[2] + t[2]], 1e-9);
  close(m.slice(12), [0, 0, 0, 1]);
});

test('AffineTransform written with a centre reads back to the same matrix', async () => {
  const m: Mat4 = [1.01, 0.02, -0.03, 4.5, -0.015, 0.98, 0.04, -2.25, 0.025, -0.035, 1.02, 7.125, 0, 0, 0, 1];
  const text = formatItkTransform(m, [10, -20, 30]);
  assert.match(text, /^#Insight Transform File V1\.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n/);
  close(parseItkTransform(text), m, 1e-9);
  close(parseItkTransform(formatItkTransform(m)), m, 1e-9);
  const dir = await mkdtemp(join(tmpdir(), 'itk-'));
  try {
    const path = join(dir, 'sub', 'moving_to_fixed.txt');
    await writeItkTransform(path, m, [1, 2, 3]);
    close(await readItkTransform(path), m, 1e-9);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('rigid parametrisations: Euler3D (ZXY and ZYX), VersorRigid3D, Similarity3D, Translation', () => {
  const header = '#Insight Transform File V1.0\n#Transform 0\n';
  // 90° about z around centre (1, 2, 3), then translate by (0, 0, 5): (2, 2, 3) → (1, 3, 8)
  const euler = parseItkTransform(
    header +
      'Transform: Euler3DTransform_double_3_3\nParameters: 0 0 1.5707963267948966 0 0 5\nFixedParameters: 1 2 3 0\n',
  );
  close(applyAffine(euler, [2, 2, 3]), [1, 3, 8], 1e-12);
  // order matters when several angles are set: ZXY (default) vs ZYX
  const angles = '0.3 -0.2 0.1 0 0 0';
  const zxy = parseItkTransform(
    header + `Transform: Euler3DTransform_double_3_3\nParameters: ${angles}\nFixedParameters: 0 0 0 0\n`,
  );
  const zyx = parseItkTransform(
    header + `Transform: Euler3DTransform_double_3_3\nParameters: ${angles}\nFixedParameters: 0 0 0 1\n`,
  );
  assert.ok(Math.abs(zxy[1] - zyx[1]) > 1e-3);
  // versor of 90° about z: (0, 0, sin 45°)
  const s = Math.SQRT1_2;
  const versor = parseItkTransform(
    header +
      `Transform: VersorRigid3DTransform_double_3_3\nParameters: 0 0 ${s} 0 0 5\nFixedParameters: 1 2 3\n`,
  );
  close(versor, euler, 1e-12);
  const sim = parseItkTransform(
    header +
      `Transform: Similarity3DTransform_double_3_3\nParameters: 0 0 0 1 2 3 2\nFixedParameters: 0 0 0\n`,
  );
  close(applyAffine(sim, [1, 1, 1]), [3, 4, 5], 1e-12);
  const tr = parseItkTransform(
    header + 'Transform: TranslationTransform_double_3_3\nParameters: 1 -2 3\nFixedParameters:\n',
  );
  close(applyAffine(tr, [0, 0, 0]), [1, -2, 3]);
});

test('a CompositeTransform applies its last-listed transform first', () => {
  const text = [
    '#Insight Transform File V1.0',
    '#Transform 0',
    'Transform: CompositeTransform_double_3_3',
    '#Transform 1',
    'Transform: AffineTransform_double_3_3',
    'Parameters: 2 0 0 0 2 0 0 0 2 0 0 0',
    'FixedParameters: 0 0 0',
    '#Transform 2',
    'Transform: TranslationTransform_double_3_3',
    'Parameters: 1 0 0',
    'FixedParameters:',
    '',
  ].join('\n');
  assert.equal(parseItkTransformEntries(text).length, 3);
  // translation first, then scaling: (1, 1, 1) → (2, 1, 1) → (4, 2, 2)
  close(applyAffine(parseItkTransform(text), [1, 1, 1]), [4, 2, 2]);
});

test('bad input gets coded errors', async () => {
  const code = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      if (isDomainError(e)) return e.code;
      throw e;
    }
    return 'none';
  };
  assert.equal(
    code(() => parseItkTransform('hello')),
    'ITK.INVALID',
  );
  assert.equal(
    code(() =>
      parseItkTransform(
        '#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\nParameters: 1 2 3\n',
      ),
    ),
    'ITK.INVALID',
  );
  assert.equal(
    code(() =>
      parseItkTransform(
        '#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1 0 0 x\n',
      ),
    ),
    'ITK.INVALID',
  );
  assert.equal(
    code(() =>
      parseItkTransform(
        '#Insight Transform File V1.0\nTransform: BSplineTransform_double_3_3\nParameters: 1\nFixedParameters: 1\n',
      ),
    ),
    'ITK.UNSUPPORTED',
  );
  assert.equal(
    code(() =>
      parseItkTransform(
        '#Insight Transform File V1.0\nTransform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\n',
      ),
    ),
    'ITK.UNSUPPORTED',
  );
  await assert.rejects(
    readItkTransform('/nonexistent/t.txt'),
    (e: unknown) => isDomainError(e) && e.code === 'ITK.NOT_FOUND',
  );
});
