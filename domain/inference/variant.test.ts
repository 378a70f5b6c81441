import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../errors.ts';
import type { ModelManifest } from '../model/manifest.ts';
import { selectVariant } from './variant.ts';

const manifest = {
  id: 'm',
  variants: [
    { id: 'flair', channels: ['FLAIR'], file: 'a.onnx', sha256: '' },
    { id: 'flair-t2-t1', channels: ['FLAIR', 'T2', 'T1'], file: 'b.onnx', sha256: '' },
    { id: 'flair-t2', channels: ['FLAIR', 'T2'], file: 'c.onnx', sha256: '' },
  ],
} as unknown as ModelManifest;

test('FLAIR+T2+T1 → FLAIR+T2 when T1 is missing → FLAIR alone, with the reason', () => {
  assert.deepEqual(
    [['FLAIR', 'T2', 'T1'], ['T2', 'FLAIR'], ['FLAIR', 'T1'], ['FLAIR']].map((a) => {
      const c = selectVariant(manifest, a as never);
      return [c.variant.id, c.reason];
    }),
    [
      ['flair-t2-t1', 'all channels present: FLAIR+T2+T1 variant'],
      ['flair-t2', 'T1 missing: FLAIR+T2 variant'],
      ['flair', 'T2 missing: FLAIR variant'],
      ['flair', 'T2 and T1 missing: FLAIR variant'],
    ],
  );
});

test('no FLAIR: MODEL.INPUT_MISMATCH', () => {
  assert.throws(
    () => selectVariant(manifest, ['T2', 'T1']),
    (e: unknown) => e instanceof DomainError && e.code === 'MODEL.INPUT_MISMATCH',
  );
});

test("'ANY' accepts whatever contrast is given", () => {
  const m = {
    id: 'b',
    variants: [{ id: 'any', channels: ['ANY'], file: 'x.onnx', sha256: '' }],
  } as unknown as ModelManifest;
  assert.equal(selectVariant(m, ['T1']).variant.id, 'any');
  assert.throws(() => selectVariant(m, []), DomainError);
});
